"""The field's standard methods and coreset baselines (issue 4) on MNIST and Fashion-MNIST, each run exactly as
`distill run --dataset D --method M --ipc N` runs it (the shipped presets), writing benchmarks/results/<name>.json.

    DISTILL_DATA=../shared/data python benchmarks/methods.py mnist-dm-ipc1
    DISTILL_DATA=../shared/data python benchmarks/methods.py --list

Names are <dataset>-<method>-ipc<N>. Each set is committed as benchmarks/artifacts/<name>.safetensors (issue 4
asks for the MNIST 1-per-class ones, benchmarks/artifacts/mnist-<method>-ipc1.safetensors).
"""

from __future__ import annotations

import json

from common import run_main, run_setting, setting_parser

from distill.presets import PUBLISHED

DATASETS = ("mnist", "fashion-mnist")
METHODS = ("dc", "dsa", "dm", "mtt", "frepo", "random", "herding", "kcenter")
SETTINGS = {f"{d}-{m}-ipc{n}": dict(dataset=d, method=m, ipc=n) for d in DATASETS for m in METHODS
            for n in (1, 10, 50)}


def main() -> None:
    parser = setting_parser(__doc__, SETTINGS)
    parser.add_argument("--resume", action="store_true", help="continue a killed run of this setting")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="stop distilling after this long (the results file records the steps taken)")
    parser.add_argument("--iterations", type=int, default=0,
                        help="run this many steps instead of the preset's (a cap, with --max-minutes)")
    parser.add_argument("--eval-every", type=int, default=0, help="validate every N steps instead of the preset's")
    args = parser.parse_args()
    if args.list or not args.name:
        for name, options in SETTINGS.items():
            print(name, json.dumps(options))
        return
    options = SETTINGS[args.name]
    key = (options["dataset"], options["method"], options["ipc"])
    command = f"DISTILL_DATA=../shared/data python benchmarks/methods.py {args.name}"
    for option, value in (("max_minutes", args.max_minutes), ("iterations", args.iterations),
                          ("eval_every", args.eval_every)):
        if value:
            options = {**options, option: value}
            command += f" --{option.replace('_', '-')} {value if isinstance(value, int) else format(value, 'g')}"
    run_setting(args.name, options, command,
                artifact=args.name, seed=args.seed, device=args.device, resume=args.resume,
                extra={"published": PUBLISHED.get(key)}, replace=args.replace)


if __name__ == "__main__":
    run_main(main)
