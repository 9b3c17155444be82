#!/usr/bin/env bash
# Benchmark settings (benchmarks/run.py) that do not fit the 2-core CPU, run side by side on one GPU in a single short
# session: one process per line of a plan file (small ConvNets leave a big GPU mostly idle, so several processes use
# it better than one), each distillation stopped by --max-minutes, each results file recording the steps it took.
#
#     DISTILL_DATA=../shared/data bash benchmarks/gpu_session.sh [PLAN]    # default benchmarks/gpu_plan.txt
#
# On the device machine: `DISTILL_DATA=.gpu-data DEADLINE=540 bash benchmarks/gpu_session.sh` (.gpu-data a carried
# copy of the data, made by benchmarks/gpu_data.sh; training images it finds as .xz become .gz first). At DEADLINE
# seconds (0: none) it stops waiting; either way it packs the results files and sets made during the session, the
# runs' own sets too (no pictures or logs: files come back at 16 MiB at most), into $OUT/gpu-session.tgz and prints
# each new result's accuracy, so the numbers reach the output even if the file does not.
#
# A plan line is `MINUTES [SCRIPT] SETTING [options]` (SCRIPT: a script's path from the repository's root, such as
# experiments/augment_sweep.py; benchmarks/run.py when left out), with ` ; ` between settings that one process runs
# in turn; MINUTES 0 means no time limit (coresets). With MPS=1 the script first tries NVIDIA's Multi-Process Service, so the
# processes' small kernels can run side by side instead of time-slicing the GPU (on one H200 it helped DM, 1,622
# steps in 3 minutes beside eight runs, but not DSA: 0.9 steps/s beside eight runs, 2.8 beside one); it checks that
# CUDA works through it and falls back to plain sharing if not. Lines starting with `+` run only when MPS is on (more processes than plain sharing
# can carry without starving the others). Beside the runs, a tiny end-to-end run of every method the plan uses
# (evaluation and files included) stops that method's runs at once if it fails, so a GPU-only failure costs
# seconds, not the session, and the other methods go on. Logs go to benchmarks/runs/logs/.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
plan=${1:-benchmarks/gpu_plan.txt}
logs=benchmarks/runs/logs
deadline=${DEADLINE:-0}
mkdir -p "$logs"
started=$logs/session-start
touch "$started"
for packed in "${DISTILL_DATA:-.}"/*/*.xz; do  # training images carried as xz (benchmarks/gpu_data.sh)
    [ -e "$packed" ] && python3 -c "import gzip, lzma, shutil, sys
with lzma.open(sys.argv[1]) as source, gzip.open(sys.argv[1][:-3] + '.gz', 'wb', compresslevel=1) as target:
    shutil.copyfileobj(source, target)" "$packed"
done
rm -f "$logs"/STOP-*

mps=0
if [ "${MPS:-0}" = 1 ]; then  # a pipe folder of our own: if MPS fails, clients find no daemon and use the GPU directly
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/distill-mps CUDA_MPS_LOG_DIRECTORY=/tmp/distill-mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"  # a daemon left by an earlier call on a warm machine
    # is reused (starting a second one fails)
    if { nvidia-cuda-mps-control -d || pgrep -x nvidia-cuda-mps-control >/dev/null; } && timeout 60 python3 -c "import torch
assert (torch.ones(2, device='cuda') * 2).sum().item() == 4"; then
        mps=1; echo "CUDA MPS is on: the processes share the GPU side by side"
    else
        timeout 10 sh -c 'echo quit | nvidia-cuda-mps-control' >/dev/null 2>&1
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
        echo "CUDA MPS is not available here: the processes time-slice the GPU; skipping the plan's + lines"
    fi
fi

method_of() {  # the method of a setting name: fashion-mnist-dsa-ipc10 -> dsa
    local rest=${1#*mnist-}; echo "${rest%-ipc*}"
}

smoke() {  # method: a two-step run of it, then evaluation, on MNIST
    local method=$1 extra=()
    [ "$method" = mtt ] && extra=(--opt experts=1 --opt train_epochs=1 --opt max_start_epoch=0 --opt expert_epochs=1
                                  --opt syn_steps=2)
    if python3 -c "from distill.cli import main; main()" run --dataset mnist --method "$method" --ipc 2 \
        --iterations 2 --eval-every 1 --eval-nets 1 --eval-epochs 2 --out "/tmp/distill-smoke/$method" --force \
        --quiet "${extra[@]}" >"$logs/smoke-$method.log" 2>&1; then
        echo "smoke test passed: $method"
    else
        echo "smoke test FAILED: $method; stopping its runs"; touch "$logs/STOP-$method"
        pkill -f "benchmarks/run\.py [a-z-]*-$method-ipc"; tail -n 30 "$logs/smoke-$method.log"
    fi
}

bench() {  # minutes, then settings with their options, separated by ';'
    local minutes=$1; shift
    local IFS=';'
    for run in $*; do
        IFS=' ' read -r -a words <<<"$run"
        local script=benchmarks/run.py
        [[ ${words[0]} == *.py ]] && { script=${words[0]}; words=("${words[@]:1}"); }
        local name=${words[0]}
        [ -e "$logs/STOP-$(method_of "$name")" ] && continue
        local limit=(); [ "$minutes" != 0 ] && limit=(--max-minutes "$minutes")
        # the device machine works on a copy: what comes back is committed, or not, by hand
        local replace=(); [ "$script" = benchmarks/run.py ] && replace=(--replace)
        python3 "$script" "${words[@]}" "${limit[@]}" "${replace[@]}" >"$logs/$name.log" 2>&1 \
            && echo "done: $name" || echo "FAILED: $name (see $logs/$name.log)"
    done
}

lines=$(grep -Ev '^\s*(#|$)' "$plan")
if [ "$mps" = 1 ]; then lines=$(sed 's/^+//' <<<"$lines"); else lines=$(grep -v '^+' <<<"$lines"); fi
# each results file records how many runs shared the GPU and whether under MPS (benchmarks/common.py, gpu_sharing)
export DISTILL_RUNS_ON_DEVICE=$(grep -c . <<<"$lines") DISTILL_MPS=$mps
mapfile -t methods < <(echo "$lines" | grep -oE '(mnist|fashion-mnist)-[a-z]+-ipc[0-9]+' \
    | while read -r name; do method_of "$name"; done | sort -u)
for method in "${methods[@]}"; do smoke "$method" & done
while read -r minutes rest; do
    [ -n "$minutes" ] && bench "$minutes" "$rest" &
done <<<"$lines"
if [ "$deadline" -gt 0 ]; then
    while [ -n "$(jobs -rp)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
    if [ -n "$(jobs -rp)" ]; then  # stop the rest, so nothing still writes to this output once the session ends
        echo "deadline of ${deadline}s reached: stopping the runs still going, packing what has finished"
        pkill -f "(benchmarks|experiments)/[a-z_]*\.py"; pkill -f "distill.cli import main"; sleep 2
    fi
else
    wait
fi
made=$(find benchmarks/results benchmarks/artifacts -newer "$started" -type f ! -name '*.png'
       find benchmarks/runs -mindepth 2 -maxdepth 2 -name 'synset*.safetensors' -newer "$started")
out=${OUT:-benchmarks/runs}
[ -n "$made" ] && tar czf "$out/gpu-session.tgz" $made && echo "packed into $out/gpu-session.tgz:" $made
for f in $made; do
    case $f in *.json) python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['name'], r.get('accuracy_mean'),
r.get('accuracy_std'), 'steps', r.get('steps_taken'), 'seconds', r.get('distill_seconds'))" "$f" ;; esac
done
