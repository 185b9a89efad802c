"""Event order at two lab time scales: does time acceleration change what happens, or only how fast?

The lab runs ``lab.time_scale`` lab seconds per real second. Each scale gets its own real run:
``runbook run -f <parameter file> 01 02 03 04 06`` on a fresh lab in a private ``RUNBOOK_LAB_DIR``
(a copy of parameters/lab.yaml with only ``lab.time_scale`` changed), the lab stopped afterwards.
What is compared between the scales:

- each notebook's record (``metadata.runbook`` of the executed notebook): the actions as
  (step, target, outcome) and the checks as (name, ok), in record order;
- the lab's Kubernetes Events per involved object: the reasons in creation order. A watch on
  ``/api/v1/events`` (the lab's kubeconfig) runs beside the suite and keeps each Event's
  resourceVersion at creation, so the order is the store's, not the 1-second ``firstTimestamp``
  (a repeated Event only raises ``count``; counts are reported apart, they follow the number of
  reconcile passes). Events are read once more, listed, before the lab stops;
- 06's phases per scenario (``results.phases``): a pair of phases in opposite order at the two
  scales is a real ordering change unless one run saw both at the same instant (a tie: one
  observation showed both), then it is the observer's granularity.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "parameters" / "lab.yaml"
NOTEBOOKS = ["01", "02", "03", "04", "06"]
SCALES = (25.0, 100.0)
#: names the lab generates: a pod's 5-character suffix (workloads._SAFE), a VolumeAttachment's hash, a PV's uid
GENERATED = [(re.compile(r"^(Pod .+)-[bcdfghjklmnpqrstvwxz2456789]{5}$"), r"\1-*"),
             (re.compile(r"csi-[0-9a-f]{64}"), "csi-*"), (re.compile(r"pvc-[0-9a-f-]{36}"), "pvc-*")]


def normalize(key: str) -> str:
    """An involved object's key without the parts the lab generates (they differ from run to run)."""
    for pattern, repl in GENERATED:
        key = pattern.sub(repl, key)
    return key


# ----------------------------------------------------------------------------- the Events watch


class EventWatch:
    """Every core/v1 Event the lab creates, with the resourceVersion it was created at.

    Waits for the lab of ``lab_dir`` to come up (``runbook run`` starts it), then watches
    ``/api/v1/events`` in short watch calls, each resuming from the last resourceVersion seen.
    """

    def __init__(self, lab_dir: Path, path: str = "/api/v1/events") -> None:
        self.lab_dir, self.path = lab_dir, path
        self.events: dict[str, dict] = {}  # namespace/name -> {"rv": creation rv, "obj": latest, "deleted": bool}
        self.added: list[tuple[int, str]] = []  # (rv, "Kind namespace/name") of every object created, by uid
        self._uids: set[str] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-watch", daemon=True)

    def start(self) -> EventWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _connection(self) -> tuple[str, str] | None:
        kubeconfig = self.lab_dir / "kubeconfig"
        if not (self.lab_dir / "server.json").exists() or not kubeconfig.exists():
            return None
        try:
            cfg = yaml.safe_load(kubeconfig.read_text())
            return cfg["clusters"][0]["cluster"]["server"], cfg["users"][0]["user"]["token"]
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
            return None

    def _note(self, etype: str, obj: dict) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        rv = int(meta.get("resourceVersion") or 0)
        if meta.get("uid") and meta["uid"] not in self._uids:
            self._uids.add(meta["uid"])
            self.added.append((rv, f"{obj.get('kind') or 'Pod'} {key}"))
        seen = self.events.get(key)
        if seen is None or (etype == "ADDED" and seen.get("deleted")):
            # first sight: an ADDED Event carries its creation rv; an Event listed by the initial
            # ADDED burst may have been bumped already, its rv is then an upper bound
            self.events[key] = {"rv": rv, "obj": obj, "deleted": etype == "DELETED"}
        else:
            seen["obj"] = obj
            seen["deleted"] = etype == "DELETED"

    def _run(self) -> None:
        since = "0"
        while not self._stop.is_set():
            conn = self._connection()
            if conn is None:
                time.sleep(0.1)
                continue
            url, token = conn
            try:
                with httpx.stream("GET", f"{url}{self.path}",
                                  params={"watch": "1", "resourceVersion": since, "timeoutSeconds": "2"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=30) as resp:
                    if resp.status_code == 410:
                        since = "0"
                        continue
                    resp.raise_for_status()
                    for line in resp.iter_lines():
                        if not line.strip():
                            continue
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            self.errors.append(str(ev.get("object", {}).get("message")))
                            since = "0"  # expired: list again (the initial ADDED burst)
                            break
                        self._note(ev["type"], ev["object"])
                        since = str(max(int(since), int(ev["object"]["metadata"]["resourceVersion"])))
            except (httpx.HTTPError, ValueError) as exc:
                if not self._stop.is_set():
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)

    def final_list(self) -> None:
        """List the Events once more through the API (the lab still runs): final counts, nothing missed."""
        conn = self._connection()
        if conn is None:
            return
        url, token = conn
        resp = httpx.get(f"{url}{self.path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        resp.raise_for_status()
        for obj in resp.json().get("items", []):
            self._note("MODIFIED", obj)

    def created(self) -> list[str]:
        """The objects watched, in creation order, generated name parts replaced."""
        return [normalize(key) for _, key in sorted(self.added)]

    def by_object(self) -> dict[str, list[dict]]:
        """Involved object -> its Events in creation order ({"reason", "count", "rv", "name", "message"}).

        Objects are keyed without generated name parts; several objects under one key (a pod re-created
        under its name, a DaemonSet's next pod on a node) are numbered in the order of their first Event.
        """
        uid_index: dict[str, dict[str, int]] = {}
        out: dict[str, list[dict]] = {}
        for ev in sorted(self.events.values(), key=lambda e: e["rv"]):
            io = ev["obj"].get("involvedObject") or {}
            name = f"{io.get('kind')} {io.get('namespace') + '/' if io.get('namespace') else ''}{io.get('name')}"
            key = normalize(name)
            uids = uid_index.setdefault(key, {})
            n = uids.setdefault(io.get("uid") or "", len(uids))
            key += f" #{n + 1}" if n else ""
            out.setdefault(key, []).append({"reason": ev["obj"].get("reason"), "count": ev["obj"].get("count", 1),
                                            "rv": ev["rv"], "name": name, "message": ev["obj"].get("message", "")})
        return out


# ----------------------------------------------------------------------------- one run per scale


@dataclass
class ScaleRun:
    scale: float
    seconds: float
    ok: bool
    per_notebook_s: dict[str, float]
    records: dict[str, dict]  # notebook -> metadata.runbook
    events: dict[str, list[dict]]
    pods: list[str] = field(default_factory=list)  # every pod the lab created, in creation order
    watch_errors: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)


def params_file(work: Path, scale: float) -> Path:
    """parameters/lab.yaml with only ``lab.time_scale`` changed."""
    data = yaml.safe_load(PARAMS.read_text())
    data["lab"]["time_scale"] = float(scale)
    path = work / f"lab-x{scale:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_at(scale: float, work: Path, echo=print, names: list[str] | None = None) -> ScaleRun:
    names = names or NOTEBOOKS
    lab_dir, out = work / "lab", work / "outputs"
    env = {**os.environ, "RUNBOOK_LAB_DIR": str(lab_dir)}
    cmd = [sys.executable, "-m", "runbook_lib.cli", "run", "-f", str(params_file(work, scale)), *names, "--out", str(out)]
    echo(f"order: time_scale {scale:g}: {' '.join(cmd[2:])}")
    watch = EventWatch(lab_dir).start()
    pod_watch = EventWatch(lab_dir, "/api/v1/pods").start()
    lines: list[str] = []
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.rstrip())
            echo("  " + line.rstrip())
        code = proc.wait()
        seconds = time.monotonic() - t0
        watch.stop()
        pod_watch.stop()
        try:
            watch.final_list()
        except httpx.HTTPError as exc:
            watch.errors.append(f"final list: {exc}")
    finally:
        watch.stop()
        pod_watch.stop()
        from runbook_lib.lab import control

        control.stop(lab_dir)  # `runbook lab stop`: no lab server outlives the benchmark
    run_json = next(iter(out.glob("*/*/run.json")), None)
    per, records = {}, {}
    if run_json is not None:
        index = json.loads(run_json.read_text())
        per = {n["name"]: n["duration_s"] for n in index["notebooks"]}
        for nb_path in sorted(run_json.parent.glob("*.ipynb")):
            nb = nbformat.read(nb_path, as_version=4)
            records[nb_path.stem] = nb.metadata.get("runbook") or {}
    return ScaleRun(scale, seconds, code == 0, per, records, watch.by_object(), pod_watch.created(),
                    watch.errors + pod_watch.errors, lines[-15:])


# ----------------------------------------------------------------------------- comparison


def actions(record: dict) -> list[tuple]:
    return [(a.get("step"), a.get("target"), a.get("outcome")) for a in record.get("actions", [])]


def checks(record: dict) -> list[tuple]:
    return [(c.get("name"), c.get("ok")) for c in record.get("checks", [])]


def phases(record: dict) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for p in (record.get("results") or {}).get("phases") or []:
        out.setdefault(p.get("scenario"), []).append((p.get("phase"), float(p.get("seconds") or 0.0)))
    return out


def _seq_diff(a: list, b: list, fmt=str, most: int = 12) -> list[str]:
    """The differing stretches of two sequences (difflib opcodes), one line each, ``most`` items a side."""
    def show(items: list) -> str:
        text = ", ".join(fmt(x) for x in items[:most])
        return f"[{text}{f', ... {len(items) - most} more' if len(items) > most else ''}]"

    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            same_set = sorted(map(str, a[i1:i2])) == sorted(map(str, b[j1:j2]))
            out.append(f"{tag} at {i1}{' (same Events, other interleaving)' if same_set and i2 > i1 else ''}: "
                       f"{show(a[i1:i2])} -> {show(b[j1:j2])}")
    return out


def compare_phases(a: list[tuple[str, float]], b: list[tuple[str, float]], res_a: float = 0.0,
                   res_b: float = 0.0) -> dict:
    """Pairs of phases in opposite order at the two scales, sorted by what they are.

    A phase's time is the first observation that showed it (06 observes every ``resolution`` cluster
    seconds; the writes' phases come from the records' own stamps): a pair closer than the
    observer's resolution in a run is not ordered by that run. A reversed pair is ``within
    resolution`` when either run could not order it, ``reversed`` (a real change) only when both did.
    """
    ta, tb = dict(a), dict(b)
    common = [p for p, _ in a if p in tb]
    ties, close, real = [], [], []
    for i, p in enumerate(common):
        for q in common[i + 1:]:
            da, db = ta[q] - ta[p], tb[q] - tb[p]  # > 0: p before q
            if da * db < 0:
                (real if abs(da) > res_a and abs(db) > res_b else close).append((p, q, round(da, 1), round(db, 1)))
            elif (da == 0) != (db == 0):
                ties.append((p, q))
    only_a = [p for p, _ in a if p not in tb]
    only_b = [p for p, _ in b if p not in ta]
    return {"same": [p for p, _ in a] == [p for p, _ in b], "ties": ties, "within_resolution": close,
            "reversed": real, "only_first": only_a, "only_second": only_b}


def compare(x: ScaleRun, y: ScaleRun) -> dict:
    result: dict = {"records": {}, "events": {}, "phases": {}}
    for name in sorted(set(x.records) | set(y.records)):
        ra, rb = x.records.get(name, {}), y.records.get(name, {})
        result["records"][name] = {
            "status": (ra.get("status"), rb.get("status")),
            "actions": (len(actions(ra)), _seq_diff(actions(ra), actions(rb), lambda t: "/".join(map(str, t)))),
            "checks": (len(checks(ra)), _seq_diff(checks(ra), checks(rb), lambda t: f"{t[0]}={t[1]}")),
        }
        pa, pb = phases(ra), phases(rb)
        res_a = float((ra.get("results") or {}).get("observation_resolution_s") or 0.0)
        res_b = float((rb.get("results") or {}).get("observation_resolution_s") or 0.0)
        if pa or pb:
            result["resolution"] = (res_a, res_b)
        for scenario in sorted(set(pa) | set(pb), key=str):
            result["phases"][scenario] = {**compare_phases(pa.get(scenario, []), pb.get(scenario, []), res_a, res_b),
                                          "first": pa.get(scenario, []), "second": pb.get(scenario, [])}
    ev = result["events"]
    ev["objects"] = (len(x.events), len(y.events))
    ev["total"] = (sum(map(len, x.events.values())), sum(map(len, y.events.values())))
    ev["only_first"] = sorted(set(x.events) - set(y.events))
    ev["only_second"] = sorted(set(y.events) - set(x.events))
    # generated names: the lab draws pod suffixes from one counter that Event creation also advances,
    # so a different suffix means a different interleaving somewhere before that pod was created
    names_a = {e["name"] for evs in x.events.values() for e in evs}
    names_b = {e["name"] for evs in y.events.values() for e in evs}
    ev["renamed"] = sorted(names_a - names_b), sorted(names_b - names_a)
    # across objects: every Event of the run in creation order
    seq_a = [t for _, t in sorted(((e["rv"], (obj, e["reason"])) for obj, evs in x.events.items() for e in evs))]
    seq_b = [t for _, t in sorted(((e["rv"], (obj, e["reason"])) for obj, evs in y.events.items() for e in evs))]
    sm = difflib.SequenceMatcher(a=seq_a, b=seq_b, autojunk=False)
    ev["global_in_place"] = sum(block.size for block in sm.get_matching_blocks())
    ev["global_diff"] = _seq_diff(seq_a, seq_b, lambda t: f"{t[0]}:{t[1]}")
    result["pods"] = {"count": (len(x.pods), len(y.pods)), "diff": _seq_diff(x.pods, y.pods)}
    ev["order"], ev["counts"] = {}, {}
    for obj in sorted(set(x.events) & set(y.events)):
        sa, sb = [e["reason"] for e in x.events[obj]], [e["reason"] for e in y.events[obj]]
        if sa != sb:
            ev["order"][obj] = _seq_diff(sa, sb) + [f"first: {' '.join(sa)}", f"second: {' '.join(sb)}"]
        ca = [(e["reason"], e["count"]) for e in x.events[obj]]
        cb = [(e["reason"], e["count"]) for e in y.events[obj]]
        if sa == sb and ca != cb:
            ev["counts"][obj] = [f"{r} {n1}->{n2}" for (r, n1), (_, n2) in zip(ca, cb, strict=True) if n1 != n2]
    return result


def measure(echo=print, scales: tuple[float, ...] = SCALES, names: list[str] | None = None) -> dict:
    runs = []
    for scale in scales:
        with tempfile.TemporaryDirectory(prefix=f"runbook-bench-order-x{scale:g}-") as tmp:
            run = run_at(scale, Path(tmp), echo, names)
            echo(f"order: time_scale {scale:g}: {'succeeded' if run.ok else 'FAILED'} in {run.seconds:.1f}s, "
                 f"{sum(map(len, run.events.values()))} Events on {len(run.events)} objects")
            runs.append(run)
    return {"runs": runs, "comparison": compare(runs[0], runs[1])}


def report(res: dict) -> list[str]:
    runs: list[ScaleRun] = res["runs"]
    cmp = res["comparison"]
    x, y = runs[0], runs[1]
    label = f"x{x.scale:g} -> x{y.scale:g}"
    out = [f"Order: notebooks {' '.join(NOTEBOOKS)} at lab.time_scale {x.scale:g} and {y.scale:g} "
           f"(runbook run on a fresh lab each)"]
    names = list(dict.fromkeys([*x.per_notebook_s, *y.per_notebook_s]))
    out.append(f"  {'wall seconds':<28} " + "  ".join(f"{'x' + format(r.scale, 'g'):>8}" for r in runs))
    for name in names:
        out.append(f"  {name:<28} " + "  ".join(f"{r.per_notebook_s.get(name, float('nan')):8.1f}" for r in runs))
    out.append(f"  {'runbook run, total':<28} " + "  ".join(f"{r.seconds:8.1f}" for r in runs)
               + f"   (speed-up {x.seconds / y.seconds:.2f})")
    for r in runs:
        if not r.ok:
            out.append(f"  run at x{r.scale:g} FAILED: " + " | ".join(r.tail[-5:]))
        if r.watch_errors:  # a 503 while etcd has no quorum: the watch resumes from the last resourceVersion
            first = r.watch_errors[0].splitlines()[0]
            out.append(f"  Events watch at x{r.scale:g}: resumed {len(r.watch_errors)} time(s) after: {first}")

    same = True
    out.append(f"  records ({label}):")
    for name, c in cmp["records"].items():
        (na, da), (nc, dc) = c["actions"], c["checks"]
        verdict = "identical" if not da and not dc and c["status"][0] == c["status"][1] else "DIFFERENT"
        same &= verdict == "identical"
        out.append(f"    {name:<28} {na:3d} actions, {nc:3d} checks: {verdict}"
                   + (f" (status {c['status'][0]} -> {c['status'][1]})" if c["status"][0] != c["status"][1] else ""))
        out += [f"      actions {d}" for d in da] + [f"      checks {d}" for d in dc]

    ev = cmp["events"]
    out.append(f"  Events ({label}): {ev['total'][0]} / {ev['total'][1]} on {ev['objects'][0]} / {ev['objects'][1]} "
               f"objects; reason order differs on {len(ev['order'])}, only counts differ on {len(ev['counts'])}")
    same &= not ev["order"] and not ev["only_first"] and not ev["only_second"]
    if ev["only_first"] or ev["only_second"]:
        out.append(f"    objects only at x{x.scale:g}: {', '.join(ev['only_first']) or '-'}")
        out.append(f"    objects only at x{y.scale:g}: {', '.join(ev['only_second']) or '-'}")
    for obj, lines in ev["order"].items():
        out.append(f"    {obj}:")
        out += [f"      {ln}" for ln in lines]
    for obj, lines in ev["counts"].items():
        out.append(f"    count only, {obj}: {', '.join(lines)}")
    total = max(ev["total"])
    out.append(f"    across objects (every Event in creation order): {ev['global_in_place']} of {total} in the same "
               f"order, {len(ev['global_diff'])} stretch(es) interleaved differently")
    out += [f"      {d}" for d in ev["global_diff"][:8]]
    if len(ev["global_diff"]) > 8:
        out.append(f"      ... {len(ev['global_diff']) - 8} more")
    if ev["renamed"][0] or ev["renamed"][1]:
        out.append(f"    generated names that differ ({len(ev['renamed'][0])}; the lab's name counter is shared with "
                   f"Event creation): {', '.join(ev['renamed'][0][:4])} -> {', '.join(ev['renamed'][1][:4])}")

    pods = cmp["pods"]
    out.append(f"  pods created ({label}): {pods['count'][0]} / {pods['count'][1]}, in creation order: "
                + ("identical" if not pods["diff"] else f"{len(pods['diff'])} difference(s)"))
    out += [f"    {d}" for d in pods["diff"]]
    same &= not pods["diff"]
    out.append(f"  06 phases ({label}), observation resolution {cmp.get('resolution', ('?', '?'))[0]} / "
               f"{cmp.get('resolution', ('?', '?'))[1]} cluster s:")
    for scenario, p in cmp["phases"].items():
        kind = ("identical" if p["same"] else
                "REORDERED" if p["reversed"] or p["only_first"] or p["only_second"] else
                "same within the observer's resolution" if p["within_resolution"] else "same up to ties")
        same &= not (p["reversed"] or p["only_first"] or p["only_second"])
        out.append(f"    {scenario}: {len(p['first'])} / {len(p['second'])} phases: {kind}")
        fmt = lambda seq: ", ".join(f"{ph} {s:g}" for ph, s in seq)  # noqa: E731
        out.append(f"      x{x.scale:g}: {fmt(p['first'])}")
        out.append(f"      x{y.scale:g}: {fmt(p['second'])}")
        for a, b in p["ties"]:
            out.append(f"      tie in one run: {a} / {b}")
        for a, b, da, db in p["within_resolution"]:
            out.append(f"      opposite order, {da:+g} / {db:+g} s apart (closer than the resolution): {a} / {b}")
        for a, b, da, db in p["reversed"]:
            out.append(f"      REVERSED, {da:+g} / {db:+g} s apart: {a} / {b}")
        for ph in p["only_first"]:
            out.append(f"      only at x{x.scale:g}: {ph}")
        for ph in p["only_second"]:
            out.append(f"      only at x{y.scale:g}: {ph}")
    out.append(f"  verdict: {'same order at both scales (per record, per object, per phase)' if same else 'ORDER CHANGED: see above'}")
    return out
