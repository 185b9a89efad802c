"""Preconditions a step checks before its first change, when an earlier notebook provides what it needs."""

from __future__ import annotations

from .. import kinds, kube
from ..errors import PreconditionFailed
from ..session import Session


def require_classes(session: Session, names: list[str]) -> None:
    """Stop before the first change when a StorageClass a notebook uses does not exist (04 has not run)."""
    api = session.kube()
    absent = [n for n in names if kube.get_object(api, kinds.STORAGE_CLASS.path(n)) is None]
    if not absent:
        return
    what = f"StorageClass {', '.join(absent)} does not exist"
    if session.dry_run:
        print(f"plan mode: {what}; planned as if 04-storage-classes had run")
        return
    raise PreconditionFailed(f"{what}: run 04-storage-classes first (after 03-piraeus-install), then this notebook again")
