"""nginx-proxy's VIRTUAL_HOST, VIRTUAL_PORT and VIRTUAL_PATH -> service meta ``nginx-host``/``nginx-path``.

As nginx-proxy reads them (environment or labels; labels win): ``VIRTUAL_HOST`` is a comma-separated
list of host names; with one exposed port that port is the site's, with several ``VIRTUAL_PORT`` picks
it (default 80); ``VIRTUAL_PATH`` is the location's path prefix (default ``/``). The values are validated
here and again by ``nginx.sites()`` (discovery/sites.py): a value that could add an nginx directive never reaches meta.
"""

from __future__ import annotations

from discovery.sites import HOST_META, PATH_META, split_hosts, valid_host, valid_path

from .engine import ContainerInfo

__all__ = ["virtual_meta"]


def _read(container: ContainerInfo, name: str) -> str | None:
    found = None
    for source in (container.env, container.labels):  # labels win, as for SERVICE_*
        for key, value in source:
            if key == name:
                found = value
    return found


def virtual_meta(
    container: ContainerInfo, port: int, several: bool, where: str, warnings: list[str]
) -> tuple[tuple[str, str], ...]:
    """The meta pairs for the service of one exposed container port (none unless VIRTUAL_HOST is set)."""
    hosts_text = _read(container, "VIRTUAL_HOST")
    if not hosts_text or not hosts_text.strip():
        return ()
    wanted = _read(container, "VIRTUAL_PORT")
    if several and str(port) != (wanted or "80").strip():
        return ()  # nginx-proxy's rule: with several ports, VIRTUAL_PORT (or 80) is the site's
    hosts = []
    for host in split_hosts(hosts_text):
        if valid_host(host):
            hosts.append(host)
        else:
            warnings.append(f"{where}: VIRTUAL_HOST {host[:80]!r} is not a host name; skipped")
    if not hosts:
        return ()
    meta = [(HOST_META, ",".join(hosts))]
    path = (_read(container, "VIRTUAL_PATH") or "").strip()
    if path and not valid_path(path):
        warnings.append(f"{where}: VIRTUAL_PATH {path[:80]!r} is not a plain URL path; using '/'")
    elif path:
        meta.append((PATH_META, path))
    return tuple(meta)
