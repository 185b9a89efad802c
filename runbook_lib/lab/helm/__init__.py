"""The lab's helm: a helm CLI the lab installs as bin/helm, with the charts it serves."""
