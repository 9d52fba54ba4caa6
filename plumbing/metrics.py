"""Prometheus metrics: one registry per daemon (never the global one), shared Consul-side metrics here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ConsulMetrics"]


class ConsulMetrics:
    """What both daemons report about their conversation with Consul."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.consul_errors = Counter(
            "upstreams_consul_errors",
            "Failed requests to Consul (each retry counts).",
            registry=self.registry,
        )
        self.consul_up = Gauge(
            "upstreams_consul_up", "1 while Consul answers, 0 while it does not.", registry=self.registry
        )
        self.fetch_seconds = Histogram(
            "upstreams_consul_fetch_seconds",
            "Time to fetch one changed service from Consul.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.blocking_wakeups = Counter(
            "upstreams_consul_blocking_answers",
            "Answers to blocking queries, by query, whether or not the data changed.",
            ["query"],
            registry=self.registry,
        )
        self.watched_services = Gauge(
            "upstreams_watched_services", "Service queries currently watched.", registry=self.registry
        )
