"""The lab's ``talosctl``: same flags, output and exit codes as the real CLI, against the lab.

``python -m runbook_lib.lab.talos.talosctl ...`` (the lab installs a ``talosctl`` wrapper script
that runs it). It reads the talosconfig like the real tool (``--talosconfig``, else
``$TALOSCONFIG``, else ``~/.talos/config``), sends each call to the first endpoint of
the context over HTTP (the lab writes ``127.0.0.1:<port>`` there) and prints what the
real talosctl prints (reference notes §2.1 and §3; talosctl ``cmd/talosctl``):

- ``get -o json``: concatenated 4-space-indented objects with sorted keys, scalars re-typed
  the way a YAML round trip re-types them; ``-o yaml``: ``---`` between resources,
  ``node:`` then ``metadata:``/``spec:`` in go-yaml's 4-space style; ``-o table`` (default)
  through a tabwriter with 3 spaces of padding.
- Errors go to stderr and exit 1 (never another code); cobra usage is appended when the
  message mentions ``arg(s)``, ``flag`` or ``command``; per-node errors are collected as
  ``N error(s) occurred:`` (talosctl ``helpers.AppendErrors``).
- ``--wait`` (reset, upgrade, reboot, shutdown) prints one ``"<node>": <message>`` line per
  update on stderr (the non-TTY reporter) and waits in *lab* time, polling the lab.

It starts as a fresh process for every call (the runbooks make hundreds), so it imports
only what a call needs: no ``urllib``/``http.client`` (a few lines of HTTP/1.1 over a
socket), no ``dataclasses``, and only its own command's module (:data:`.main.COMMAND_CLASSES`):
the machine-configuration model and ``yaml`` only for ``apply-config`` and ``patch``.
``python -X importtime -m runbook_lib.lab.talos.talosctl version --client`` shows what is left.

Parts: :mod:`.commands` (the command and flag table), :mod:`.args` (parsing, usage), :mod:`.transport`
(talosconfig, HTTP client), :mod:`.output` (formatting), :mod:`.session` (one call), the command classes
(:mod:`.resources`, :mod:`.config`, :mod:`.lifecycle`, :mod:`.node_info`, :mod:`.etcd`) and :mod:`.main`.
"""
