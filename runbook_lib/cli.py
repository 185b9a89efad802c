"""The ``runbook`` command (CONTRACTS §1)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ParamsError, RunbookError


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import parse_override, run

    overrides = {key: parse_override(value) for key, value in (args.param or [])}
    try:
        run_dir, ok = run(Path(args.file), args.notebooks, Path(args.out), overrides)
    except ParamsError as err:
        _print_problems(err)
        return 2
    print(run_dir)
    return 0 if ok else 1


def _cmd_verify(args: argparse.Namespace) -> int:
    from .runs import verify_run

    result = verify_run(Path(args.run_dir))
    if result.ok:
        print(f"OK: {args.run_dir}: every notebook hash matches; chain intact over {result.checked_runs} run(s)")
        return 0
    for problem in result.problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    return 1


def _print_problems(err: ParamsError) -> None:
    print(f"{err.source or 'parameters'}: {len(err.problems)} problem(s)", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_params_check(args: argparse.Namespace) -> int:
    from .params import load_params

    try:
        params = load_params(Path(args.file))
    except ParamsError as err:
        _print_problems(err)
        return 2
    print(f"{args.file}: valid ({params.target}, cluster '{params.cluster_name}', {len(params.nodes)} nodes)")
    return 0


def _lab_options(file: str | None) -> dict | None:
    if not file:
        return None
    from .params import load_params

    params = load_params(Path(file))
    return {
        "nodes": [n.model_dump() for n in params.nodes], "time_scale": params.lab.time_scale,
        "seed": params.lab.seed, "disk_size": params.lab.disk_size_bytes, "disk_transport": params.lab.disk_transport,
        "initial_talos_version": params.lab.initial_talos_version,
        "faults": [f.model_dump() for f in params.lab.faults],
    }


def _cmd_lab(args: argparse.Namespace) -> int:
    # The lab's own front-end: the only place outside runbook_lib.lab that imports it.
    from .lab import control

    action = args.lab_cmd
    if action == "start":
        info = control.start(_lab_options(args.file))
        print(f"lab running at {info['url']} (state in {info['lab_dir']})")
        print(f"  kubeconfig:  {info['kubeconfig']}\n  talosconfig: {info['talosconfig']}\n  talosctl:    {info['talosctl']}")
    elif action == "stop":
        print("lab stopped" if control.stop() else "lab was not running")
    elif action == "reset":
        info = control.reset(_lab_options(args.file))
        print(f"lab reset: a fresh cluster is running at {info['url']}")
    elif action == "status":
        st = control.status()
        if st is None:
            print(f"lab not running (lab directory {control.lab_dir()})")
            return 3
        if args.json:
            print(json.dumps(st, indent=2))
            return 0
        print(f"lab running (pid {st['pid']}), lab time {st['lab_time']:.0f}s at x{st['time_scale']:g}, "
              f"etcd quorum {'yes' if st['etcd_quorum'] else 'NO'}")
        for n in st["nodes"]:
            print(f"  {n['name']:<12} {n['address']:<15} {n['role']:<12} {n['stage']:<14} "
                  f"{'Ready' if n['ready'] else 'NotReady'}  {n['talos_version']}")
        for f in st["faults"]:
            print(f"  fault #{f['id']} {f['kind']} node={f['node']} peer={f['peer']} count={f['count']}")
    elif action == "fault":
        if args.fault_cmd == "add":
            fault = control.fault_add(args.kind, args.node, args.peer, args.count)
            print(f"fault #{fault['id']} added: {fault['kind']}")
        elif args.fault_cmd == "list":
            faults = control.fault_list()
            for f in faults:
                print(f"#{f['id']} {f['kind']} node={f['node']} peer={f['peer']} count={f['count']}")
            if not faults:
                print("no faults")
        elif args.fault_cmd == "remove":
            fault = control.fault_remove(args.id)
            print(f"fault #{fault['id']} removed: {fault['kind']}")
        else:
            print(f"cleared {len(control.fault_clear())} fault(s)")
    elif action == "kubeconfig":
        print(control.export_kubeconfig(args.output))
    elif action == "power-on":
        control.power_on(args.node)
        print(f"{args.node}: powered on")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook", description="LINSTOR/DRBD on Talos runbooks")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="execute notebooks with papermill and record the run")
    p.add_argument("-f", "--file", required=True, help="parameter file (YAML)")
    p.add_argument("notebooks", nargs="*", help="notebooks to run (01 or 01-partition); default all")
    p.add_argument("--out", default="outputs", help="output directory (default outputs/)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override a parameter (value parsed as YAML)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("verify", help="check a run's hashes and its chain to earlier runs")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("params", help="parameter files")
    psub = p.add_subparsers(dest="params_cmd", required=True)
    c = psub.add_parser("check", help="validate a parameter file")
    c.add_argument("file")
    c.set_defaults(func=_cmd_params_check)

    p = sub.add_parser("lab", help="the simulated cluster")
    lsub = p.add_subparsers(dest="lab_cmd", required=True)
    for name in ("start", "reset"):
        c = lsub.add_parser(name)
        c.add_argument("-f", "--file", help="parameter file whose nodes and lab options to use")
    lsub.add_parser("stop")
    c = lsub.add_parser("status")
    c.add_argument("--json", action="store_true")
    f = lsub.add_parser("fault", help="inject faults")
    fsub = f.add_subparsers(dest="fault_cmd", required=True)
    a = fsub.add_parser("add")
    a.add_argument("kind")
    a.add_argument("--node")
    a.add_argument("--peer")
    a.add_argument("--count", type=int)
    fsub.add_parser("list")
    fsub.add_parser("clear")
    r = fsub.add_parser("remove")
    r.add_argument("id", type=int)
    c = lsub.add_parser("kubeconfig", help="print the running lab's kubeconfig path (for export KUBECONFIG=...)")
    c.add_argument("-o", "--output", help="write a copy of the kubeconfig to this file instead (mode 0600)")
    c = lsub.add_parser("power-on", help="power on a node that was shut down")
    c.add_argument("node")
    p.set_defaults(func=_cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ParamsError as err:
        _print_problems(err)
        return 2
    except RunbookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
