"""The ``runbook`` command (CONTRACTS §1)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from urllib3.exceptions import HTTPError as TransportError

from . import __version__
from .errors import ParamsError, RunbookError, RunInterrupted
from .params import FAULT_KINDS


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import parse_override, run

    overrides = {key: parse_override(value) for key, value in (args.param or [])}
    try:
        run_dir, ok = run(Path(args.file), args.notebooks, Path(args.out), overrides)
    except ParamsError as err:
        _print_problems(err)
        return 2
    _say_lab_still_running()
    print(run_dir)
    return 0 if ok else 1


def _say_lab_still_running() -> None:
    """The lab outlives a run on purpose (the next notebook or run reuses its state): say so, and how to stop it."""
    from .lab import control

    st = control.status()
    if st is not None:
        print(f"the lab is still running (pid {st['pid']}, state in {control.lab_dir()}); "
              "stop it with: runbook lab stop")


def _cmd_verify(args: argparse.Namespace) -> int:
    from .runs import verify_run

    result = verify_run(Path(args.run_dir))
    for note in result.notes:
        print(f"NOTE: {note}", file=sys.stderr)
    if not result.ok:
        for problem in result.problems:
            print(f"MISMATCH: {problem}", file=sys.stderr)
        return 1
    print(f"OK: {args.run_dir}: every notebook hash matches; chain intact over {result.checked_runs} run(s)")
    if result.status != "succeeded":
        print(f"NOT SUCCEEDED: {args.run_dir}: the record is intact, but the run ended {result.status}", file=sys.stderr)
        return 3
    return 0


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
        "nodes": params.lab_nodes(), "time_scale": params.lab.time_scale,
        "seed": params.lab.seed, "disk_size": params.lab.disk_size_bytes, "disk_transport": params.lab.disk_transport,
        "initial_talos_version": params.lab.initial_talos_version,
        "faults": [f.model_dump() for f in params.lab.faults],
        "enforce_safety": params.lab.enforce_safety, "workload_write_mib_s": params.lab.workload_write_mib_s,
        "initial_extensions": params.lab.initial_extensions, "initial_kernel_args": params.lab.initial_kernel_args,
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
        opts = st.get("options") or {}
        print(f"  safety rules {'enforced' if opts.get('enforce_safety') else 'relaxed'}, volumes in use write "
              f"{opts.get('workload_write_mib_s') or 0:g} MiB/s while a replica is away")
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
    parser.add_argument("--version", action="version", version=f"runbook {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="execute notebooks with papermill and record the run")
    p.add_argument("-f", "--file", required=True, help="parameter file (YAML)")
    p.add_argument("notebooks", nargs="*", help="notebooks to run (01 or 01-partition); default all")
    p.add_argument("--out", default="outputs", help="output directory (default outputs/)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override a parameter (value parsed as YAML); KEY may be section.key, "
                        "e.g. -p failover.keep_test_objects true")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("verify", help="check a run's hashes and its chain to earlier runs")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("params", help="parameter files")
    psub = p.add_subparsers(dest="params_cmd", required=True)
    c = psub.add_parser("check", help="validate a parameter file")
    c.add_argument("file")
    c.set_defaults(func=_cmd_params_check)

    p = sub.add_parser("lab", help="the simulated cluster (state in $RUNBOOK_LAB_DIR, else a per-user cache folder)")
    lsub = p.add_subparsers(dest="lab_cmd", required=True, metavar="{start,stop,status,reset,fault,power-on}")
    helps = {"start": "start the lab (or keep the running one) and print its connection files",
             "reset": "stop the lab, drop its state and start a fresh cluster"}
    for name in ("start", "reset"):
        c = lsub.add_parser(name, help=helps[name], description=helps[name])
        c.add_argument("-f", "--file", help="parameter file whose nodes and lab options to use")
    lsub.add_parser("stop", help="stop the lab (its state is kept for the next start)",
                    description="stop the lab; its state is kept for the next start")
    c = lsub.add_parser("status", help="the lab's nodes, lab time and faults (exit 3: not running)",
                        description="the lab's nodes, lab time and faults; exits 3 when the lab is not running")
    c.add_argument("--json", action="store_true", help="print the status as JSON")
    f = lsub.add_parser("fault", help="inject, list, remove or clear faults", description="inject faults")
    fsub = f.add_subparsers(dest="fault_cmd", required=True, metavar="{add,list,remove,clear}")
    a = fsub.add_parser("add", help="inject a fault", description="inject a fault (see the README for the kinds)")
    a.add_argument("kind", help=", ".join(FAULT_KINDS))
    a.add_argument("--node", help="the node the fault applies to")
    a.add_argument("--peer", help="the other node (partition, replication-down)")
    a.add_argument("--count", type=int, help="how many requests or calls fail (api-errors, talosctl-fail, helm-fail)")
    fsub.add_parser("list", help="list active faults")
    fsub.add_parser("clear", help="remove every fault")
    r = fsub.add_parser("remove", help="remove one fault by its number")
    r.add_argument("id", type=int, help="the fault's number (runbook lab fault list)")
    c = lsub.add_parser("kubeconfig", help="print the running lab's kubeconfig path (for export KUBECONFIG=...)",
                        description="print the running lab's kubeconfig path (for export KUBECONFIG=...)")
    c.add_argument("-o", "--output", help="write a copy of the kubeconfig to this file instead (mode 0600)")
    c = lsub.add_parser("power-on", help="power on a node that was shut down",
                        description="power on a node that was shut down")
    c.add_argument("node", help="node name, e.g. lab-w-1")
    p.set_defaults(func=_cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `runbook lab status | head`: the reader left; point stdout at /dev/null so the exit flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ParamsError as err:
        _print_problems(err)
        return 2
    except RunInterrupted as err:
        print(f"runbook: {err}", file=sys.stderr)
        return 130
    except RunbookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("runbook: interrupted", file=sys.stderr)
        return 130
    except TransportError as exc:  # a client library's connection error that no module turned into a sentence
        print(f"error: cannot reach {getattr(exc, 'url', None) or 'the cluster'} ({type(exc).__name__}): check that "
              "the cluster is up and the kubeconfig/talosconfig point at it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}: check the path and its permissions", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
