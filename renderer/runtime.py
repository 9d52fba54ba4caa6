"""What SIGHUP replaces: the config, its templates, the quiescence policy and nginx control, as one value.

The daemon holds one ``Runtime`` and swaps it with one assignment, so a round never sees the new
config with the old templates (or the other way round).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import SidecarConfig, TemplateConfig, load_config
from .debounce import Quiescence
from .nginx import CommandNginx, Nginx
from .template import Rendered, TemplateSet

__all__ = ["Runtime", "reload_runtime", "start_runtime"]

log = logging.getLogger("renderer.daemon")  # split out of the daemon: its lines keep their logger name


@dataclass(frozen=True)
class Runtime:
    """The parts of the sidecar that come from its config file."""

    config: SidecarConfig
    templates: TemplateSet
    policy: Quiescence
    nginx: Nginx

    def files(self, renders: Iterable[Rendered]) -> list[tuple[TemplateConfig, Rendered]]:
        """Each render with the template config it goes to (renders of unknown sources are dropped)."""
        by_source = {t.source: t for t in self.config.templates}
        return [(by_source[r.source], r) for r in renders if r.source in by_source]

    def destinations(self, renders: Iterable[Rendered]) -> list[tuple[Path, Rendered]]:
        """Each render with the file it is written to."""
        return [(t.destination, r) for t, r in self.files(renders)]


def start_runtime(config: SidecarConfig, nginx: Nginx | None) -> Runtime:
    """The runtime at start-up (templates not loaded yet); ``nginx``: a seam for tests."""
    return Runtime(
        config=config,
        templates=TemplateSet(
            (t.source for t in config.templates), config.template_env, config.nginx.dynamic.enabled
        ),
        policy=Quiescence(config.wait.min, config.wait.max),
        nginx=nginx or CommandNginx(config.nginx),
    )


def reload_runtime(old: Runtime, env: Mapping[str, str]) -> Runtime:
    """The config file and templates read again; raise ConfigError or TemplateError if invalid."""
    new = load_config(old.config.path, env)
    templates = TemplateSet((t.source for t in new.templates), new.template_env, new.nginx.dynamic.enabled)
    errors = templates.load()
    if errors:
        raise errors[0]
    if new.consul != old.config.consul:
        log.warning("The [consul] settings changed; they take effect at the next restart.")
        new = dataclasses.replace(new, consul=old.config.consul)
    # A test's nginx stays; the real one follows the new [nginx] table.
    nginx = CommandNginx(new.nginx) if isinstance(old.nginx, CommandNginx) else old.nginx
    return Runtime(new, templates, Quiescence(new.wait.min, new.wait.max), nginx)
