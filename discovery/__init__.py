"""Reading the world: Consul's catalog, health and KV as whole, sorted Snapshots.

Modules, from the pure core to the edges:

* ``model``     frozen Instance, ServiceSummary, the queries (Dependency) and Snapshot
* ``catalog``   Consul's health and catalog JSON -> instances (address fallback, worst status, validation)
* ``blocking``  the blocking-query loop and its rules
* ``watch``     the Watcher: which queries to run for what the templates need; publishes Snapshots
* ``datacenter`` one datacenter's signal, KV and service-fetch queries, each datacenter on its own loop
* ``problems``  the health signal's answer (the non-passing checks) and what changed between two answers
* ``bulk``      many services read per node instead of one by one (first render, fallback, resync)
* ``decoding``  large JSON answers decoded in a thread, item by item, off the event loop
* ``nodes``     nodes(), node(name) and datacenters(): catalog nodes as values, and how they are watched
* ``reachability``, ``outages``  which datacenters answer ("Consul away" is the local agent only)
* ``sites``     virtual hosts in service meta (nginx-host, nginx-path) and their validation
* ``acl``       whether the configured token can read services at all
* ``settings``  Consul connection settings: the [consul] table plus Consul's environment conventions
* ``client``    the asyncio Consul client and its transport; query paths quoted as one segment each

The exception tree and the plumbing both daemons share (durations, logs, metrics, the status server,
systemd notify) live in the ``plumbing`` package; the errors are re-exported here for callers of
``discovery``.
"""

from plumbing.errors import (
    ConfigError,
    ConsulDenied,
    ConsulError,
    ConsulUnavailable,
    NginxCheckFailed,
    NginxError,
    NginxNotRunning,
    NginxReloadFailed,
    OutputError,
    TemplateError,
    UpstreamsError,
)

from .client import ConsulClient
from .model import CatalogQuery, Dependency, Instance, KeyQuery, ServiceQuery, ServiceSummary, Snapshot
from .settings import ConsulSettings
from .watch import Watcher

__all__ = [
    "CatalogQuery",
    "ConfigError",
    "ConsulClient",
    "ConsulDenied",
    "ConsulError",
    "ConsulSettings",
    "ConsulUnavailable",
    "Dependency",
    "Instance",
    "KeyQuery",
    "NginxCheckFailed",
    "NginxError",
    "NginxNotRunning",
    "NginxReloadFailed",
    "OutputError",
    "ServiceQuery",
    "ServiceSummary",
    "Snapshot",
    "TemplateError",
    "UpstreamsError",
    "Watcher",
]
