"""Virtual hosts in service meta (nginx-proxy's convenience on Consul): the keys and their validation.

``nginx-host`` holds comma-separated host names, ``nginx-path`` a location prefix. Any registration can
carry them (the companion writes them from VIRTUAL_HOST/VIRTUAL_PATH). Both the companion and the
``nginx.sites()`` macro validate them, so a value that could add an nginx directive is never used.
"""

from __future__ import annotations

import re

__all__ = ["HOST_META", "PATH_META", "split_hosts", "valid_host", "valid_path"]

HOST_META, PATH_META = "nginx-host", "nginx-path"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PATH = re.compile(r"/[A-Za-z0-9._~%/-]{0,511}")


def valid_host(host: str) -> bool:
    """An RFC 1123 host name, optionally starting with ``*.`` (nginx's wildcard server_name)."""
    name = host[2:] if host.startswith("*.") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def valid_path(path: str) -> bool:
    """A URL path prefix of characters that are plain in an nginx ``location`` (no spaces, ;, {, }, $)."""
    return bool(_PATH.fullmatch(path))


def split_hosts(text: str) -> list[str]:
    """Comma-separated host names, lower-cased, blanks and duplicates removed, in order (not validated)."""
    out: list[str] = []
    for raw in text.split(","):
        host = raw.strip().lower()
        if host and host not in out:
            out.append(host)
    return out
