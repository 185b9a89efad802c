"""``python -m benchmarks``: measure and print the runbooks' own cost, reaction time and scale."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import machine

ROOT = Path(__file__).resolve().parents[1]


def _use_this_tree() -> None:
    """Kernels, the lab and the tool shims are child processes: make them import this tree's runbook_lib."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=["suite", "clock", "reaction", "scale", "order"], action="append",
                        help="run only these measurements (repeatable); default: suite, reaction and scale "
                             "(clock runs the suite three times and order five notebooks twice: only when asked)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 30, 300], help="node counts for the scale views")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                        help="suite and clock: only these notebooks (01, 02-extensions-and-upgrade, ...); default: all")
    parser.add_argument("--time-scales", type=float, nargs=2, default=[25.0, 100.0], metavar=("A", "B"),
                        help="order: the two lab.time_scale values compared (default 25 100)")
    args = parser.parse_args(argv)
    wanted = args.only or ["suite", "reaction", "scale"]
    _use_this_tree()
    lines = [f"Machine: {machine.one_line(machine.describe())}"]

    def echo(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if "suite" in wanted:
        from . import suite

        lines += suite.report(suite.measure(echo, names=args.notebooks))
    if "clock" in wanted:
        from . import clock

        lines += clock.report(clock.measure(echo, names=args.notebooks))
    if "reaction" in wanted:
        from . import reaction

        lines += reaction.report(reaction.measure(echo))
    if "scale" in wanted:
        from . import scale

        lines += scale.report(scale.measure(echo, tuple(args.sizes)))
    if "order" in wanted:
        from . import order

        lines += order.report(order.measure(echo, tuple(args.time_scales)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
