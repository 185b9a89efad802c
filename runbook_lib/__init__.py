"""runbook_lib: the library behind the LINSTOR/DRBD-on-Talos runbooks."""

import sys

__version__ = "0.1.0"

# jsonschema (under nbformat, papermill and kubernetes-validate) imports the optional rfc3987_syntax, which compiles
# 38 lark grammars at import time (1.4 s on a quiet 2-core machine, several seconds on a busy one) only to check the
# "iri" and "iri-reference" string formats. No schema the runbooks validate uses those formats (notebooks, Kubernetes
# and Talos schemas), so every kernel, `runbook` command and lab process that imports runbook_lib first skips it;
# jsonschema then simply does not register those two format checkers (jsonschema/_format.py).
sys.modules.setdefault("rfc3987_syntax", None)
