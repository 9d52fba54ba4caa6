"""``upstreams demo``: Consul, nginx, the sidecar, the companion and a replicated "prime" service on one
host, a scripted story of failures and recoveries, and measured latencies from Consul to nginx."""

from .options import DemoOptions, add_parser
from .stack import run_demo

__all__ = ["DemoOptions", "add_parser", "run_demo"]
