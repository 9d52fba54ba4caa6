"""The companion's Prometheus metrics, in a registry of its own (Consul-side metrics are shared)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from plumbing.metrics import ConsulMetrics

__all__ = ["RegistrarMetrics"]


class RegistrarMetrics(ConsulMetrics):
    """Registrations, reconciles, engine reconnects and check results, on top of the Consul metrics."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.registrations = Counter(
            "upstreams_registrations", "Services registered (or updated) on the agent.", registry=r
        )
        self.deregistrations = Counter(
            "upstreams_deregistrations", "Owned services deregistered from the agent.", registry=r
        )
        self.reconciles = Counter("upstreams_reconciles", "Reconciles that completed.", registry=r)
        self.reconcile_failures = Counter(
            "upstreams_reconcile_failures",
            "Reconciles that failed (engine or Consul away, retried with backoff).",
            registry=r,
        )
        self.engine_reconnects = Counter(
            "upstreams_engine_reconnects", "Times the engine's event stream was opened again.", registry=r
        )
        self.check_results = Counter(
            "upstreams_check_results",
            "Results of the checks the companion runs itself, by status.",
            ["status"],
            registry=r,
        )
        self.watched_containers = Gauge(
            "upstreams_watched_containers", "Running containers in the last listing.", registry=r
        )
        self.owned_services = Gauge(
            "upstreams_owned_services", "Services on the agent that this host owns.", registry=r
        )
        self.ready = Gauge("upstreams_ready", "1 once the first reconcile succeeded.", registry=r)
