"""The parameter file: one validated model for every notebook, the CLI and the lab.

A parameter file names the cluster, its nodes and the storage layout, and records
which destructive steps the operator approved. A typo there can wipe the wrong
disk, so the rules are strict and the errors are specific:

* unknown keys are errors at every level (``extra="forbid"``), with a suggestion;
* every problem is reported at once, each prefixed with its dotted path
  (``nodes[2].address: not an IP address``), including cross-field checks such as
  duplicate node names or approvals naming a node that does not exist;
* YAML duplicate keys are errors, and YAML syntax errors give line and column;
* secret values never show up in ``repr``, in error messages or in
  :meth:`Params.redacted`.

Top-level keys are papermill notebook parameters (:data:`PARAMETER_KEYS`); values
passed with ``papermill -p`` arrive as strings or numbers and are coerced the lax
pydantic way. To add a parameter, add one field to :class:`Params` (or to a
sub-model) with its default.

The package, by job: :mod:`.model` (:class:`Params`), one module per section (:mod:`.nodes`,
:mod:`.storage`, :mod:`.lab`, :mod:`.sections`), :mod:`.fields` (each value's own rule),
:mod:`.confirm` (approval entries), :mod:`.checks` (cross-field rules), :mod:`.versions` (Talos
version gates), :mod:`runbook_lib.fault_kinds`, :mod:`.secrets` (redaction, secret split), :mod:`.problems`
and :mod:`.messages` (error wording), :mod:`.loading` (files, namespaces, size limit).
"""

from __future__ import annotations

from ..errors import ParamsError
from ..fault_kinds import COUNTED_FAULT_KINDS, FAULT_KINDS, PAIR_FAULT_KINDS
from .confirm import ACTIONS
from .lab import Fault, LabOptions
from .loading import MAX_PARAMS_FILE_BYTES, load_params, params_from_namespace, parse_params, read_params_file
from .model import PARAMETER_KEYS, Params
from .nodes import DEFAULT_NODES, Node
from .secrets import SECRET_KEY_SUFFIXES, is_secret_key, merge_secrets, redact_tree, split_secrets
from .sections import Bench
from .storage import Storage
from .versions import (
    MIN_TALOS_VERSION,
    supports_ephemeral_resize_by_reset,
    supports_user_volumes,
    version_tuple,
)

__all__ = [
    "ACTIONS",
    "Bench",
    "DEFAULT_NODES",
    "COUNTED_FAULT_KINDS",
    "FAULT_KINDS",
    "PAIR_FAULT_KINDS",
    "MIN_TALOS_VERSION",
    "PARAMETER_KEYS",
    "SECRET_KEY_SUFFIXES",
    "Fault",
    "LabOptions",
    "MAX_PARAMS_FILE_BYTES",
    "Node",
    "Params",
    "ParamsError",
    "Storage",
    "is_secret_key",
    "load_params",
    "merge_secrets",
    "params_from_namespace",
    "parse_params",
    "read_params_file",
    "redact_tree",
    "split_secrets",
    "supports_ephemeral_resize_by_reset",
    "supports_user_volumes",
    "version_tuple",
]
