"""The sidecar's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from plumbing.metrics import ConsulMetrics

__all__ = ["SidecarMetrics"]


class SidecarMetrics(ConsulMetrics):
    """Renders, reloads, refused checks, rollbacks and excluded instances, on top of the Consul metrics."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.renders = Counter("upstreams_renders", "Complete renders of every template.", registry=r)
        self.reloads = Counter(
            "upstreams_nginx_reloads", "nginx reloads after an accepted change.", registry=r
        )
        self.check_failures = Counter(
            "upstreams_nginx_check_failures", "Renders nginx's check refused (files restored).", registry=r
        )
        self.rollbacks = Counter(
            "upstreams_rollbacks",
            "Rounds whose written files were restored (refused check or write error).",
            registry=r,
        )
        self.reload_failures = Counter(
            "upstreams_nginx_reload_failures", "Reloads that failed (retried).", registry=r
        )
        self.template_errors = Counter(
            "upstreams_template_errors", "Template load or render errors.", registry=r
        )
        self.last_apply = Gauge(
            "upstreams_last_apply_timestamp_seconds",
            "When the live files last changed and nginx took them (a reload, or a push in dynamic mode).",
            registry=r,
        )
        self.exclusions = Counter(
            "upstreams_instance_exclusions",
            "Instances left out of rendering because nginx rejected the line written from them.",
            registry=r,
        )
        self.excluded = Gauge(
            "upstreams_excluded_instances",
            "Instances left out right now (until their registration changes); see /status.",
            registry=r,
        )
        self.ready = Gauge("upstreams_ready", "1 once the first complete render is live.", registry=r)
        self._dynamic()

    def _dynamic(self) -> None:
        """``[nginx] dynamic``: pushes, fallbacks to a reload, repairs and the generation."""
        r = self.registry
        self.dynamic_pushes = Counter(
            "upstreams_dynamic_pushes",
            "Updates nginx's update endpoint took (kind: changed upstreams, or the full state).",
            ["kind"],
            registry=r,
        )
        self.dynamic_fallbacks = Counter(
            "upstreams_dynamic_fallbacks",
            "Server-only changes that took the reload path because the push failed (reason).",
            ["reason"],
            registry=r,
        )
        self.dynamic_repairs = Counter(
            "upstreams_dynamic_repairs",
            "Full pushes that repaired runtime state found different from the files.",
            registry=r,
        )
        # Every label from the start, so a rate over them never begins with a missing series.
        for kind in ("changed", "full"):
            self.dynamic_pushes.labels(kind=kind)
        for reason in ("unreachable", "refused", "invalid"):
            self.dynamic_fallbacks.labels(reason=reason)
        self.dynamic_generation = Gauge(
            "upstreams_dynamic_generation", "The generation of the last runtime update written.", registry=r
        )
