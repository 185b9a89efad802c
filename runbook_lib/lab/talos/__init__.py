"""The lab's Talos Linux: the node and cluster model, its API endpoint, the talosctl shim and the Image Factory."""
