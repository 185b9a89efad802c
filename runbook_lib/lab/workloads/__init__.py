"""The lab's workload side: controllers, scheduler, kubelet and the pod runners."""
