"""Run the lab's talosctl: ``python -m runbook_lib.lab.talos.talosctl <command> ...``."""

import sys

from .main import main

sys.exit(main())
