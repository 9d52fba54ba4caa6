"""Waiting for real parts to reach a state: the harness's (harness/waiting.py)."""

from harness.waiting import wait_until

__all__ = ["wait_until"]
