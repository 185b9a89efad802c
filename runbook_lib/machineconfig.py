"""Pure operations on Talos machine configurations (multi-document YAML).

Talos identifies a document by ``apiVersion``, ``kind`` and ``name`` (the main
``v1alpha1`` config has no kind). The runbooks never rewrite a configuration: they compare
it with what they want and patch in only what is missing.
"""

from __future__ import annotations

import yaml

from .errors import ParseError


def split_documents(text: str) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ParseError("talosctl", f"machine configuration is not valid YAML: {exc}") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ParseError("talosctl", f"machine configuration document #{i} is not a mapping")
    return docs


def doc_key(doc: dict) -> tuple[str, str, str]:
    return (str(doc.get("apiVersion", "")), str(doc.get("kind", "")), str(doc.get("name", "")))


def covers(live: object, wanted: object) -> bool:
    """``live`` already holds every key and value of ``wanted`` (lists compared whole)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(k in live and covers(live[k], v) for k, v in wanted.items())
    return live == wanted


def documents_to_patch(current: list[dict], wanted: list[dict]) -> list[dict]:
    """The documents of ``wanted`` that ``current`` lacks, or holds without all of their content."""
    index = {doc_key(d): d for d in current}
    return [d for d in wanted if not covers(index.get(doc_key(d)), d)]


def documents_patch(current: list[dict], wanted: list[dict]) -> str | None:
    """A ``talosctl patch machineconfig`` patch holding only the documents ``current`` lacks (or holds
    with other values), or None when nothing is missing, so a re-run patches nothing.

    Talos merges a patch's named documents (``VolumeConfig``, ``RawVolumeConfig``, ...) into the running
    configuration by ``kind`` and ``name`` (talos ``configpatcher``; a same-named document is updated, a new
    one appended), so the node's own configuration is never read back, re-serialised or written anywhere:
    only our rendered documents are dumped.
    """
    missing = documents_to_patch(current, wanted)
    if not missing:
        return None
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in missing)


def config_modules(docs: list[dict]) -> list[dict]:
    """``machine.kernel.modules`` of the main (v1alpha1) document: ``[{name, parameters?}]``."""
    main = next((d for d in docs if "machine" in d), {})
    modules = ((main.get("machine") or {}).get("kernel") or {}).get("modules") or []
    return [m for m in modules if isinstance(m, dict) and m.get("name")]


def modules_patches(current: list[dict], wanted: list[dict]) -> list[str]:
    """The ``talosctl patch machineconfig`` patches that bring ``wanted`` modules into ``current``; [] when none.

    Talos merges lists by appending (``pkg/machinery/config/merge``: a slice is "merged by concatenating
    the right to the left"), so a module whose name is already there is never sent again: a re-run
    patches nothing. A module that is there with other parameters (``zfs`` without ``zfs_arc_max``)
    cannot be fixed by appending either; then the list is replaced in one call: the first patch
    deletes ``machine.kernel.modules`` (``$patch: delete``), the second sets the node's own list with
    that entry's parameters changed and the missing modules added, every other entry kept as it was.
    """
    by_name = {m["name"]: m for m in current}
    missing = [m for m in wanted if m["name"] not in by_name]
    changed = {m["name"]: m for m in wanted if m["name"] in by_name
               and list(by_name[m["name"]].get("parameters") or []) != list(m.get("parameters") or [])}
    if not missing and not changed:
        return []
    if not changed:
        return [yaml.safe_dump({"machine": {"kernel": {"modules": missing}}}, sort_keys=False)]
    merged = [changed.get(m["name"], m) for m in current] + missing
    return [yaml.safe_dump({"machine": {"kernel": {"modules": {"$patch": "delete"}}}}, sort_keys=False),
            yaml.safe_dump({"machine": {"kernel": {"modules": merged}}}, sort_keys=False)]
