"""``python -m runbook_lib.lab.helm``: the lab's bin/helm shim."""

import sys

from .cli import main

sys.exit(main())
