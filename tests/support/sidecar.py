"""The real ``upstreams`` console script against a test's Consul and nginx: the harness's (harness/sidecar.py)."""

from harness.sidecar import TEMPLATE, UPSTREAMS, SidecarProcess, write_config

__all__ = ["TEMPLATE", "UPSTREAMS", "SidecarProcess", "write_config"]
