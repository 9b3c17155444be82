#!/usr/bin/env bash
# The settings of benchmarks/methods.py that do not fit the 2-core CPU, run side by side on one GPU in a single short
# session: each one a process of its own (small ConvNets leave a big GPU mostly idle, so several processes use it
# better than one), each distillation stopped by --max-minutes, each results file recording the steps it took.
#
#     DISTILL_DATA=../shared/data bash benchmarks/gpu_session.sh [MINUTES]
#
# MINUTES (default 5.5) bounds each 10-per-class distillation; the runs that go two to a process (Fashion-MNIST DC
# and DSA at 1 per class; MTT at 1 and 10, which share their experts) get 40% of it each. Beside them, a tiny
# end-to-end run of every method family (evaluation and files included) stops the whole batch at once if it fails,
# so a GPU-only failure costs seconds, not the session. Logs go to benchmarks/runs/logs/.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
minutes=${1:-5.5}
short=$(python3 -c "print(round($minutes * 0.4, 2))")
logs=benchmarks/runs/logs
mkdir -p "$logs"

stop=$logs/STOP
rm -f "$stop"

smoke() {  # name, then options for `distill run`
    local name=$1; shift
    python3 -c "from distill.cli import main; main()" run --dataset mnist --iterations 2 --eval-every 1 \
        --eval-nets 1 --eval-epochs 2 --out "/tmp/distill-smoke/$name" --force --quiet "$@" >"$logs/smoke-$name.log" 2>&1
}
smoke_all() {
    smoke dsa --method dsa --ipc 2 && smoke dm --method dm --ipc 2 && smoke mtt --method mtt --ipc 1 \
        --opt experts=1 --opt train_epochs=1 --opt max_start_epoch=0 --opt expert_epochs=1 --opt syn_steps=2 \
        && echo "smoke tests passed" && return
    echo "a smoke test failed: stopping every run"; touch "$stop"; pkill -f benchmarks/methods.py
    tail -n 30 "$logs"/smoke-*.log
}

bench() {  # minutes, then one or more setting names run one after the other in one process
    local limit=$1; shift
    for name in "$@"; do
        [ -e "$stop" ] && return
        python3 benchmarks/methods.py "$name" --max-minutes "$limit" >"$logs/$name.log" 2>&1 \
            && echo "done: $name" || echo "FAILED: $name (see $logs/$name.log)"
    done
}
smoke_all &
for d in mnist fashion-mnist; do
    for m in dc dsa dm; do bench "$minutes" "$d-$m-ipc10" & done
done
bench "$short" fashion-mnist-dc-ipc1 fashion-mnist-dsa-ipc1 &
bench "$minutes" mnist-dc-ipc1 &
bench "$short" mnist-mtt-ipc1 mnist-mtt-ipc10 &
wait
[ ! -e "$stop" ]
