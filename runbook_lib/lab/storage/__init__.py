"""The lab's storage stack: the Piraeus operator, LINSTOR wiring, linstor-csi, the HA controller, snapshots, DRBD."""
