"""The physical floor: the least any Consul-to-nginx sidecar must spend, measured on this machine.

``MinimalSidecar`` is the simplest thing that could work: one blocking query on
``/v1/health/service/NAME``, and on every answer that changes the passing set, write the upstream
file and SIGHUP nginx's master. No template engine, no ``nginx -t``, no debounce, no safety. It records
when each answer arrived (Consul's wake-up after a flip) and when it signalled nginx, so the floor
splits into "Consul wakes the watcher" and "nginx reload until the new upstream routes".

``MinimalPusher`` is the same for ``[nginx] dynamic = true``: each answer's peers are pushed to nginx's
Lua endpoint instead of written and reloaded.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

from .dynamic_rig import LuaNginx, push

__all__ = ["MinimalPusher", "MinimalSidecar", "Wake", "passing"]


def passing(entries: list[dict[str, object]]) -> list[tuple[str, int]]:
    """(address, port) of every instance whose checks all pass, sorted."""
    out = []
    for entry in entries:
        checks = entry.get("Checks") or []
        assert isinstance(checks, list)
        if all(c.get("Status") == "passing" for c in checks):
            svc = entry["Service"]
            assert isinstance(svc, dict)
            out.append((str(svc["Address"] or "127.0.0.1"), int(svc["Port"])))
    return sorted(out)


class Wake:
    """One answer of the blocking query: when it arrived, and when nginx was signalled (if it was)."""

    def __init__(self, arrived: float, signalled: float | None) -> None:
        self.arrived = arrived
        self.signalled = signalled


class MinimalSidecar:
    """A thread: blocking query -> upstream text -> write -> SIGHUP. Loopback only; stops on ``stop()``."""

    def __init__(self, consul_address: str, service: str, dest: Path, pid_file: Path, upstream: str) -> None:
        self.consul_address = consul_address
        self.service = service
        self.dest = dest
        self.pid_file = pid_file
        self.upstream = upstream
        self.wakes: list[Wake] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="floor-sidecar", daemon=True)
        self.ready = threading.Event()

    def __enter__(self) -> MinimalSidecar:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        # The thread may sit in a blocking query: it is a daemon thread, bounded by the 3s wait.
        self._thread.join(timeout=12)

    def _run(self) -> None:
        index, last = 0, None
        while not self._stop.is_set():
            url = f"{self.consul_address}/v1/health/service/{self.service}"
            if index:
                url += f"?index={index}&wait=3s"
            try:
                with urllib.request.urlopen(url, timeout=15) as resp:
                    arrived = time.monotonic()
                    new_index = int(resp.headers.get("X-Consul-Index", "1"))
                    entries = json.loads(resp.read())
            except OSError:
                time.sleep(0.1)
                index = 0
                continue
            index = new_index if new_index >= index else 0
            index = max(index, 1)
            text = self._render(entries)
            signalled = None
            if text != last:
                signalled = self._apply(text, entries)
                last = text
                self.ready.set()
            self.wakes.append(Wake(arrived, signalled))

    def _apply(self, text: str, entries: list[dict[str, object]]) -> float:
        """Write the file and SIGHUP nginx; when nginx was signalled."""
        tmp = self.dest.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.dest)
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGHUP)
        return time.monotonic()

    def _render(self, entries: list[dict[str, object]]) -> str:
        servers = [f"    server {address}:{port};\n" for address, port in passing(entries)]
        body = "".join(servers) or "    server 127.0.0.1:1 down;\n"
        return f"upstream {self.upstream} {{\n{body}}}\n"

    def wake_after(self, t0: float) -> Wake | None:
        """The first answer that arrived after ``t0``."""
        for wake in list(self.wakes):
            if wake.arrived >= t0:
                return wake
        return None


class MinimalPusher(MinimalSidecar):
    """The dynamic floor: the same blocking query, then one ``POST`` of the upstream's peers to nginx's
    Lua endpoint (no file, no reload). ``Wake.signalled`` is when the push was sent."""

    def __init__(self, consul_address: str, service: str, nginx: LuaNginx, upstream: str) -> None:
        super().__init__(consul_address, service, Path("/nonexistent"), Path("/nonexistent"), upstream)
        self.nginx = nginx

    def _apply(self, text: str, entries: list[dict[str, object]]) -> float:
        peers = [{"address": a, "port": p, "weight": 1, "backup": False} for a, p in passing(entries)]
        sent = time.monotonic()
        push(self.nginx, {self.upstream: peers})
        return sent
