"""Pure operations on Talos machine configurations (multi-document YAML).

Talos identifies a document by ``apiVersion``, ``kind`` and ``name`` (the main
``v1alpha1`` config has no kind). Adding our documents to a running configuration
replaces a same-named document and appends new ones, as a Talos config patch does.
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


def dump_documents(docs: list[dict]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def merge_documents(current: list[dict], additions: list[dict]) -> list[dict]:
    """``current`` with each of ``additions`` replacing its same-keyed document or appended."""
    out = list(current)
    for doc in additions:
        idx = next((i for i, d in enumerate(out) if doc_key(d) == doc_key(doc)), None)
        if idx is None:
            out.append(doc)
        else:
            out[idx] = doc
    return out


def missing_or_different(current: list[dict], wanted: list[dict]) -> list[dict]:
    """The documents of ``wanted`` that ``current`` lacks or holds with other content."""
    index = {doc_key(d): d for d in current}
    return [d for d in wanted if index.get(doc_key(d)) != d]
