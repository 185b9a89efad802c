"""runbook_lib: the library behind the LINSTOR/DRBD-on-Talos runbooks."""

__version__ = "0.1.0"
