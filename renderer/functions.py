"""Template functions and filters for ports from consul-template: ls, tree, node, nodes, datacenters,
JSON, regular expressions, byTag, env.

The data functions read the snapshot through the reader's ``_get`` (so they are watched like
``service()``); the rest are pure functions of their arguments (``env`` reads only the variables the
config allowed, resolved at start-up). What they return is escaped on output like every other value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from discovery.model import (
    DatacentersQuery,
    Dependency,
    Node,
    NodeInfo,
    NodeQuery,
    NodesQuery,
    PrefixQuery,
)
from discovery.sites import HOST_META, PATH_META, split_hosts, valid_host, valid_path
from plumbing.errors import TemplateError

from .escape import NGINX_NAME

__all__ = ["DATA_FUNCTIONS", "FILTERS", "DataFunctions", "go_expand", "make_env"]

DATA_FUNCTIONS = ("ls", "tree", "node", "nodes", "datacenters", "nginx_sites")


def _prefix(prefix: Any) -> str:
    """A KV prefix as a folder: no leading '/', one trailing '/' (the whole store for '')."""
    text = str(prefix).strip("/")
    return f"{text}/" if text else ""


def _node_view(node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "address": node.address,
        "datacenter": node.datacenter,
        "id": node.id,
        "meta": dict(node.meta),
    }


class DataFunctions:
    """ls(), tree(), node(), nodes() and datacenters(), mixed into the template reader."""

    def _get(self, dep: Dependency, empty: Any) -> Any:
        raise NotImplementedError  # the reader's: records the dependency, reads the snapshot

    def ls(self, prefix: str) -> list[dict[str, str]]:
        """The keys right under a prefix (not folders, not deeper keys), names relative to it, sorted."""
        base = _prefix(prefix)
        pairs: tuple[tuple[str, str], ...] = self._get(PrefixQuery(base), ())
        rest = [(k[len(base) :], v) for k, v in pairs]
        return [{"key": k, "value": v} for k, v in rest if k and "/" not in k]

    def tree(self, prefix: str) -> list[dict[str, str]]:
        """Every key under a prefix at any depth (not folders), names relative to it, sorted."""
        base = _prefix(prefix)
        pairs: tuple[tuple[str, str], ...] = self._get(PrefixQuery(base), ())
        rest = [(k[len(base) :], v) for k, v in pairs]
        return [{"key": k, "value": v} for k, v in rest if k and not k.endswith("/")]

    def node(self, name: str) -> dict[str, Any] | None:
        """A node and its services (``node``, ``services``), or none when there is no such node."""
        info: NodeInfo | None = self._get(NodeQuery(str(name)), None)
        if info is None:
            return None
        services = [
            {
                "id": s.id,
                "name": s.name,
                "address": s.address,
                "port": s.port,
                "tags": s.tags,
                "meta": dict(s.meta),
            }
            for s in info.services
        ]
        return {"node": _node_view(info.node), "services": services}

    def nodes(self) -> list[dict[str, Any]]:
        """Every node of the catalog, sorted by name."""
        found: tuple[Node, ...] = self._get(NodesQuery(), ())
        return [_node_view(n) for n in found]

    def datacenters(self) -> list[str]:
        """The names of every known datacenter, sorted."""
        return list(self._get(DatacentersQuery(), ()))

    def service(self, name: str, tag: str | None = None, dc: str | None = None, passing: bool = True) -> Any:
        raise NotImplementedError  # the reader's

    def services(self, tag: str | None = None, dc: str | None = None) -> Any:
        raise NotImplementedError  # the reader's

    def nginx_sites(self, tag: str | None = None, dc: str | None = None) -> list[dict[str, Any]]:
        """Sites from services' nginx-host/nginx-path meta: [{host, locations: [{path, service}]}], sorted.

        Every instance counts, whatever its health (the upstream leaves out unhealthy ones), so a site
        does not come and go with a check. Invalid hosts and paths, and services whose name nginx cannot
        use in an upstream name, are left out; when two services claim
        the same host and path, the first by name keeps it.
        """
        claims: dict[str, dict[str, str]] = {}
        for summary in self.services(tag=tag, dc=dc):
            if not NGINX_NAME.fullmatch(str(summary["name"])):
                continue  # its upstream could not be named, so nothing could proxy to it
            for instance in self.service(summary["name"], dc=dc, passing=False):
                meta = instance["meta"]
                path = meta.get(PATH_META, "/") or "/"
                if not valid_path(path):
                    continue
                for host in split_hosts(meta.get(HOST_META, "")):
                    if valid_host(host):
                        claims.setdefault(host, {}).setdefault(path, summary["name"])
        return [
            {"host": host, "locations": [{"path": p, "service": s} for p, s in sorted(paths.items())]}
            for host, paths in sorted(claims.items())
        ]


_GO_REF = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def by_tag(items: Any, tag: str | None = None) -> Any:
    """consul-template's byTag: tag -> instances carrying it (keys sorted); with a tag, those instances."""
    if tag is not None:
        return with_tag(items, tag)
    groups: dict[str, list[Any]] = {}
    for item in items:
        for t in item["tags"]:
            groups.setdefault(t, [])
            if item not in groups[t]:
                groups[t].append(item)
    return dict(sorted(groups.items()))


def with_tag(items: Any, tag: str) -> list[Any]:
    """The instances carrying a tag."""
    return [i for i in items if tag in i["tags"]]


def parse_json(text: Any) -> Any:
    """A JSON text as a value; empty or missing (a KV key that does not exist) gives an empty mapping."""
    if text is None or str(text).strip() == "":
        return {}
    try:
        return json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"parse_json: the text is not JSON ({exc.msg} at position {exc.pos})") from None


def to_json(value: Any) -> str:
    """A value as compact JSON text, keys sorted (escaped on output like any value)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(str(pattern))
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None


def regex_match(value: Any, pattern: str) -> bool:
    """Whether the pattern matches somewhere in the value (Go's regexp.MatchString)."""
    return _regex(pattern).search(str(value)) is not None


def regex_replace(value: Any, pattern: str, replacement: str) -> str:
    """Every match replaced; ``$1``, ``${name}`` and ``$$`` in the replacement as in Go."""
    return _regex(pattern).sub(lambda m: go_expand(m, str(replacement)), str(value))


def go_expand(match: re.Match[str], template: str) -> str:
    """Go's Regexp.Expand: ``$n``/``${n}``/``$name`` become groups (missing ones empty), ``$$`` is ``$``."""

    def one(ref: re.Match[str]) -> str:
        name = ref.group(1) or ref.group(2)
        if name is None:
            return "$"
        try:
            group = match.group(int(name) if name.isdigit() else name)
        except IndexError:  # no such group: Go writes nothing
            return ""
        return group or ""

    return _GO_REF.sub(one, template)


def split_text(value: Any, sep: str) -> list[str]:
    """consul-template's split: an empty text gives no items."""
    text = "" if value is None else str(value)
    return text.split(str(sep)) if text else []


def make_env(allowed: Mapping[str, str]) -> Callable[[str], str]:
    """``env(name)``: the value of an allowed variable (resolved at start-up); other names are errors."""

    def env(name: str) -> str:
        if name not in allowed:
            raise TemplateError(
                f"env(): the variable {name!r} is not allowed; list it in the template's 'env' in the config."
            )
        return allowed[name]

    return env


FILTERS: dict[str, Callable[..., Any]] = {
    "by_tag": by_tag,
    "with_tag": with_tag,
    "parse_json": parse_json,
    "to_json": to_json,
    "regex_match": regex_match,
    "regex_replace": regex_replace,
    "split_text": split_text,
}
