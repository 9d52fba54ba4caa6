"""The real Consul agent the fixtures start: the harness's (harness/consul.py)."""

from harness.consul import ConsulAgent

__all__ = ["ConsulAgent"]
