"""``helm`` for the lab: Helm 3's commands the runbooks use, over the lab's Kubernetes API.

Runs as the lab's ``bin/helm`` shim (``python -m runbook_lib.lab.helm ...``) and talks to the
API server named by ``--kubeconfig``/``$KUBECONFIG`` with its credentials (client certificate or bearer
token, over https or http), like helm does.

- ``install``/``upgrade [--install]`` RELEASE CHART ``-n NS [--create-namespace] [--version V]
  [--set k=v] [--set-string k=v] [-f values.yaml] [--wait] [--timeout 5m0s] [--dry-run]``, ``status``,
  ``list``, ``uninstall``, ``version``, ``repo add|update|list``, ``show chart|values``.
- One chart exists in the lab's registry: ``oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus``
  (versions in :data:`piraeus.CHART_VERSIONS`); pulling it prints ``Pulled:``/``Digest:`` on
  stderr. Other OCI references are not found (``failed to perform "FetchReference" on
  source: ...: not found``); ``repo/chart`` needs ``helm repo add`` first (``repo X not
  found``), and a repository that does not exist cannot be added (helm's ``looks like "URL"
  is not a valid chart repository or cannot be reached``).
- Releases are stored like Helm 3's Secret driver: Secret ``sh.helm.release.v1.<name>.v<N>``,
  type ``helm.sh/release.v1``, labels ``name``/``owner=helm``/``status``/``version``, data
  ``release`` = base64(gzip(JSON)); ``upgrade`` supersedes the previous revision and deletes
  objects the new manifest no longer has (CRDs too: this chart renders them as templates).
- Fault ``helm-fail``: each call that would reach the cluster consumes one use and exits 1
  with ``Error: ... Kubernetes cluster unreachable`` (``helm version`` does not count).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ..storage import chart as piraeus
from . import charts
from .args import Args, HelmError, duration, user_values
from .cluster import Cluster
from .manifests import apply_manifests, delete_manifests, manifest_docs, manifest_text, wait_ready
from .releases import ansic, go_time, list_time, load_releases, now_utc, save_release

HELM_VERSION = "v3.19.0"
HELM_COMMIT = "3d8990f0836691f0229297773f3524598f46bda6"
GO_VERSION = "go1.24.7"
OCI_PREFIX = "oci://"
KNOWN_REPOS = {"https://piraeus.io/helm-charts": ("linstor-cluster", "snapshot-controller", "piraeus-ha-controller",
                                                  "linstor-scheduler", "linstor-affinity-controller")}


def resolve_chart(ref: str, version: str | None, cluster: Cluster | None, verb: str) -> tuple[str, str]:
    """(chart name, version) for a chart reference, or the error helm prints."""
    if ref.startswith(OCI_PREFIX):
        location = ref[len(OCI_PREFIX):]
        tag = None
        if ":" in location.rsplit("/", 1)[-1]:
            location, tag = location.rsplit(":", 1)
        want = version or tag
        chart = charts.by_location(location)
        if chart is None:
            if want:
                raise HelmError(f'{verb}failed to perform "FetchReference" on source: {location}:{want}: not found')
            raise HelmError(f'{verb}GET "https://{location.split("/", 1)[0]}/v2/{location.split("/", 1)[-1]}/tags/list": '
                            "response status code 404: name unknown: repository name not known to registry")
        chosen = (want or chart.newest()).lstrip("v")
        if chosen not in chart.versions:
            raise HelmError(f'{verb}failed to perform "FetchReference" on source: {location}:{want}: not found')
        digest = hashlib.sha256(f"{location}:{chosen}".encode()).hexdigest()
        print(f"Pulled: {location}:{chosen}", file=sys.stderr)
        print(f"Digest: sha256:{digest}", file=sys.stderr)
        return chart.name, chosen
    if ref.startswith((".", "/")):
        raise HelmError(f'{verb}path "{ref}" not found')
    if "/" in ref:
        repo, chart = ref.split("/", 1)
        repos = _repos(cluster)
        if repo not in repos:
            raise HelmError(f"{verb}repo {repo} not found")
        url = repos[repo].rstrip("/")
        raise HelmError(f'{verb}chart "{chart}" version "{version or ""}" is known to {url} but the lab\'s registry '
                        "only serves the Piraeus operator chart (oci://ghcr.io/piraeusdatastore/piraeus-operator/piraeus)"
                        if chart in KNOWN_REPOS.get(url, ()) else
                        f'{verb}chart "{chart}" matching {version or ""} not found in {repo} index. '
                        "(try 'helm repo update'): no chart name found")
    raise HelmError(f"{verb}non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}")


def _repo_file(cluster: Cluster | None) -> Path:
    env = os.environ.get("HELM_REPOSITORY_CONFIG")
    if env:
        return Path(env)
    base = cluster.kubeconfig.parent if cluster else Path.home() / ".config" / "helm"
    return base / "helm" / "repositories.yaml"


def _repos(cluster: Cluster | None) -> dict[str, str]:
    path = _repo_file(cluster)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {r["name"]: r["url"] for r in data.get("repositories") or []}


def _print_status(rel: dict, out: str | None) -> None:
    if out == "json":
        print(json.dumps(rel))
        return
    if out == "yaml":
        print(yaml.safe_dump(rel, sort_keys=False), end="")
        return
    info = rel["info"]
    deployed = datetime.strptime(info["last_deployed"][:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    print(f"NAME: {rel['name']}")
    print(f"LAST DEPLOYED: {ansic(deployed)}")
    print(f"NAMESPACE: {rel['namespace']}")
    print(f"STATUS: {info['status']}")
    print(f"REVISION: {rel['version']}")
    print("TEST SUITE: None")
    if info.get("notes"):
        print("NOTES:")
        print(info["notes"], end="")


def cmd_install(args: Args, cluster: Cluster, *, upgrade: bool) -> int:
    if len(args.positional) < 3:
        raise HelmError(f'"helm {args.positional[0]}" requires 2 arguments\n\nUsage:  helm {args.positional[0]} [NAME] [CHART] [flags]')
    release, chart_ref = args.positional[1], args.positional[2]
    namespace = args.get("--namespace") or "default"
    verb = "UPGRADE FAILED: " if upgrade else "INSTALLATION FAILED: "
    if cluster.take_fault():
        raise HelmError(verb + cluster.unreachable().args[0])
    existing = [r for r in load_releases(cluster, namespace, release)]
    deployed = [r for r in existing if r["info"]["status"] == "deployed"]
    if upgrade and not deployed:
        if not args.has("--install"):
            raise HelmError(f'UPGRADE FAILED: "{release}" has no deployed releases')
        verb = ""
        print(f'Release "{release}" does not exist. Installing it now.')
    if not upgrade and existing and any(r["info"]["status"] != "uninstalled" for r in existing):
        raise HelmError("INSTALLATION FAILED: cannot re-use a name that is still in use")
    chart, version = resolve_chart(chart_ref, args.get("--version"), cluster, verb)
    values = user_values(args)
    ns_resp = cluster.request("GET", f"/api/v1/namespaces/{namespace}")
    if ns_resp.status_code == 404 and not args.has("--dry-run"):
        if not args.has("--create-namespace"):
            raise HelmError(f'{verb}create: failed to create: namespaces "{namespace}" not found')
        cluster.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    spec = charts.by_name(chart)
    docs = spec.render(release, namespace, version, values)
    now = now_utc()
    previous = deployed[-1] if deployed else None
    if args.has("--dry-run"):  # render only: nothing reaches the cluster, no release is recorded
        print(f"NAME: {release}\nLAST DEPLOYED: {ansic(now)}\nNAMESPACE: {namespace}\n"
              f"STATUS: {'pending-upgrade' if previous else 'pending-install'}\n"
              f"REVISION: {max((r['version'] for r in existing), default=0) + 1}\nTEST SUITE: None\nHOOKS:\nMANIFEST:")
        print(manifest_text(docs), end="")
        return 0
    apply_manifests(cluster, json.loads(json.dumps(docs)), release, namespace, verb)
    if previous is not None:
        new_keys = {(d["kind"], d["metadata"]["name"]) for d in docs}
        gone = [d for d in manifest_docs(previous["manifest"]) if (d["kind"], d["metadata"]["name"]) not in new_keys]
        delete_manifests(cluster, gone, namespace)
    revision = max((r["version"] for r in existing), default=0) + 1
    rel = {"name": release, "namespace": namespace, "version": revision, "config": values, "manifest": manifest_text(docs),
           "info": {"first_deployed": (previous or {}).get("info", {}).get("first_deployed", go_time(now)),
                    "last_deployed": go_time(now), "deleted": "",
                    "description": "Upgrade complete" if previous else "Install complete", "status": "deployed",
                    "notes": spec.notes(values)},
           "chart": {"metadata": {"name": chart, "version": version, "description": spec.description, "apiVersion": "v2",
                                  "appVersion": spec.app_version(version), "type": "application", "home": spec.home,
                                  "sources": spec.sources},
                     "lock": None, "templates": [], "values": spec.values, "schema": None, "files": []}}
    if args.has("--wait"):
        try:
            wait_ready(cluster, docs, namespace, duration(args.get("--timeout") or "5m0s"), verb)
        except HelmError:
            rel["info"].update({"status": "failed", "description": f"Release \"{release}\" failed: context deadline exceeded"})
            save_release(cluster, rel, create=True)
            raise
    for old in existing:
        if old["info"]["status"] == "deployed":
            old["info"]["status"] = "superseded"
            save_release(cluster, old, create=False)
    save_release(cluster, rel, create=True)
    if previous is not None:
        print(f'Release "{release}" has been upgraded. Happy Helming!')
    _print_status(rel, args.get("--output"))
    return 0


def cmd_status(args: Args, cluster: Cluster) -> int:
    if len(args.positional) < 2:
        raise HelmError('"helm status" requires 1 argument\n\nUsage:  helm status RELEASE_NAME [flags]')
    if cluster.take_fault():
        raise cluster.unreachable()
    rels = [r for r in load_releases(cluster, args.get("--namespace") or "default", args.positional[1])
            if r["info"]["status"] != "superseded"]
    if not rels:
        raise HelmError("release: not found")
    _print_status(rels[-1], args.get("--output"))
    return 0


def cmd_list(args: Args, cluster: Cluster) -> int:
    if cluster.take_fault():
        raise cluster.unreachable()
    ns = None if args.has("--all-namespaces") else (args.get("--namespace") or "default")
    latest: dict[tuple[str, str], dict] = {}
    for rel in load_releases(cluster, ns):
        latest[(rel["namespace"], rel["name"])] = rel
    rows = [r for r in latest.values() if args.has("--all") or r["info"]["status"] in ("deployed", "failed")]
    out = args.get("--output")
    items = [{"name": r["name"], "namespace": r["namespace"], "revision": str(r["version"]),
              "updated": list_time(datetime.strptime(r["info"]["last_deployed"][:26], "%Y-%m-%dT%H:%M:%S.%f")),
              "status": r["info"]["status"], "chart": f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
              "app_version": r["chart"]["metadata"].get("appVersion", "")} for r in rows]
    if out == "json":
        print(json.dumps(items))
    elif out == "yaml":
        print(yaml.safe_dump(items, sort_keys=False), end="")
    else:
        header = ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]
        table = [header] + [[i["name"], i["namespace"], i["revision"], i["updated"], i["status"], i["chart"], i["app_version"]]
                            for i in items]
        widths = [max(len(r[c]) for r in table) for c in range(len(header))]
        for row in table:
            print("\t".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip())
    return 0


def cmd_uninstall(args: Args, cluster: Cluster) -> int:
    if len(args.positional) < 2:
        raise HelmError('"helm uninstall" requires at least 1 argument\n\nUsage:  helm uninstall RELEASE_NAME [...] [flags]')
    if cluster.take_fault():
        raise HelmError("uninstall: " + cluster.unreachable().args[0])
    namespace = args.get("--namespace") or "default"
    for release in args.positional[1:]:
        rels = load_releases(cluster, namespace, release)
        if not rels:
            raise HelmError(f"uninstall: Release not loaded: {release}: release: not found")
        delete_manifests(cluster, manifest_docs(rels[-1]["manifest"]), namespace)
        for rel in rels:
            cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/sh.helm.release.v1.{release}.v{rel['version']}")
        print(f'release "{release}" uninstalled')
    return 0


def cmd_repo(args: Args) -> int:
    sub = args.positional[1] if len(args.positional) > 1 else ""
    cluster = None
    try:
        cluster = Cluster(args.get("--kubeconfig"))
    except HelmError:
        cluster = None
    path = _repo_file(cluster)
    repos = _repos(cluster)
    if sub == "add":
        if len(args.positional) < 4:
            raise HelmError('"helm repo add" requires 2 arguments\n\nUsage:  helm repo add [NAME] [URL] [flags]')
        name, url = args.positional[2], args.positional[3]
        known = url.rstrip("/") in KNOWN_REPOS
        if not known:
            host = url.split("://", 1)[-1].split("/", 1)[0]
            raise HelmError(f'looks like "{url}" is not a valid chart repository or cannot be reached: Get '
                            f'"{url.rstrip("/")}/index.yaml": dial tcp: lookup {host} on 127.0.0.53:53: no such host')
        if repos.get(name) == url:
            print(f'"{name}" already exists with the same configuration, skipping')
            return 0
        repos[name] = url
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"apiVersion": "", "generated": go_time(now_utc()),
                                        "repositories": [{"name": n, "url": u} for n, u in repos.items()]}))
        print(f'"{name}" has been added to your repositories')
        return 0
    if sub == "update":
        if not repos:
            raise HelmError("no repositories found. You must add one before updating")
        print("Hang tight while we grab the latest from your chart repositories...")
        for name in repos:
            print(f'...Successfully got an update from the "{name}" chart repository')
        print("Update Complete. ⎈Happy Helming!⎈")
        return 0
    if sub == "list":
        if not repos:
            raise HelmError("no repositories to show")
        print("NAME\tURL")
        for name, url in repos.items():
            print(f"{name}\t{url}")
        return 0
    raise HelmError(f'unknown command "{sub}" for "helm repo"')


def cmd_show(args: Args) -> int:
    what = args.positional[1] if len(args.positional) > 1 else ""
    if len(args.positional) < 3:
        raise HelmError(f'"helm show {what}" requires 1 argument')
    _chart, version = resolve_chart(args.positional[2], args.get("--version"), None, "")
    if what == "chart":
        print(yaml.safe_dump({"apiVersion": "v2", "appVersion": f"v{version}", "name": piraeus.CHART_NAME, "type": "application",
                              "version": version}, sort_keys=False), end="")
    elif what == "values":
        print(yaml.safe_dump({"installCRDs": False, "replicaCount": 1, "operator": {"options": {}, "resources": {}},
                              "nodeSelector": {}, "tolerations": []}, sort_keys=False), end="")
    else:
        raise HelmError(f'unknown command "{what}" for "helm show"')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = Args(argv)
        if not args.positional:
            print("The Kubernetes package manager\n\nUsage:\n  helm [command]")
            return 0
        cmd = args.positional[0]
        if cmd == "version":
            if args.has("--short"):
                print(f"{HELM_VERSION}+g{HELM_COMMIT[:7]}")
            else:
                print(f'version.BuildInfo{{Version:"{HELM_VERSION}", GitCommit:"{HELM_COMMIT}", GitTreeState:"clean", '
                      f'GoVersion:"{GO_VERSION}"}}')
            return 0
        if cmd == "repo":
            return cmd_repo(args)
        if cmd in ("show", "inspect"):
            return cmd_show(args)
        cluster = Cluster(args.get("--kubeconfig"))
        if cmd == "install":
            return cmd_install(args, cluster, upgrade=False)
        if cmd == "upgrade":
            return cmd_install(args, cluster, upgrade=True)
        if cmd == "status":
            return cmd_status(args, cluster)
        if cmd in ("list", "ls"):
            return cmd_list(args, cluster)
        if cmd in ("uninstall", "delete", "del", "un"):
            return cmd_uninstall(args, cluster)
        raise HelmError(f'unknown command "{cmd}" for "helm"\nRun \'helm --help\' for usage.')
    except HelmError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1

