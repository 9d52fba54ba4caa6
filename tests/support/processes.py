"""Stopping the real parts the tests start: the harness's (harness/process.py)."""

from harness.process import stop_process

__all__ = ["stop_process"]
