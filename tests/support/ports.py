"""Free loopback ports: the harness's (harness/ports.py), where tests have always imported them from."""

from harness.ports import distinct_free_ports, free_port, wait_port

__all__ = ["distinct_free_ports", "free_port", "wait_port"]
