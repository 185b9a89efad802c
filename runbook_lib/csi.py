"""linstor-csi's names on the Kubernetes side: the CSI driver that provisions LINSTOR volumes.

A leaf module, so 04's classes, 05's snapshots and 06's drill share the name without importing each other.
"""

from __future__ import annotations

PROVISIONER = "linstor.csi.linbit.com"  # also the prefix of the StorageClass parameter keys
