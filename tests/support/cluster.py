"""The real Consul cluster the cluster tests start: the harness's (harness/cluster.py)."""

from harness.cluster import FAST_GOSSIP, TELEMETRY, Cluster, ClusterAgent, loopback_addresses

__all__ = ["FAST_GOSSIP", "TELEMETRY", "Cluster", "ClusterAgent", "loopback_addresses"]
