"""The companion: keep a Consul agent's registrations equal to the running containers and service files.

Modules, from the pure core to the edges:

* ``spec``     frozen ServiceSpec / CheckSpec, their Consul 1.8 registration bodies (owner marker, digest),
  and the one set of rules for their values (builders that return problems)
* ``labels``   container labels and environment -> specs (registrator's conventions), with warnings;
  ``label_checks`` the SERVICE_CHECK_* labels, ``ports`` SERVICE_PORTS, ``virtualhost`` VIRTUAL_HOST
* ``files``    service files (TOML / JSON) -> specs (the same rules, as config errors)
* ``plan``     desired specs vs. the agent's services -> what to register and deregister
* ``agent``    the local agent's HTTP API (list, register, deregister, update a TTL check)
* ``runner``   script and HEALTHCHECK checks the companion runs itself, reported to TTL checks;
  ``runc_exec`` the opt-in ``[checks] exec = "runc"`` path (runc exec on the engine's own state)
* ``config``   the ``[consul]``, ``[registrar]`` and ``[status]`` tables
* ``state``    what the companion knows of itself, for ``/health`` and ``/status``
* ``metrics``  its Prometheus metrics (``/metrics``)
* ``daemon``   one TaskGroup: engine events, the services folder, a timer and an agent probe trigger
  reconciles; the status endpoint; systemd readiness
* ``engine_events`` following the engine's events (deaths remembered, reconnects); ``watch_dir`` the
  services folder; ``retry`` backoff through tenacity; ``stop`` deregistration on stop
* ``engine``   the container engine edge (subpackage): values, inspect translation, event policy, the
  SDK's thread bridge, DockerEngine, process-tree kill, Podman's exec monitors, socket diagnosis
* ``cli``      ``upstreams-registrar run|check``
"""

from .config import RegistrarConfig, load_config
from .daemon import Registrar
from .labels import HostSettings, services_for
from .plan import Plan, make_plan
from .spec import OWNER_KEY, CheckSpec, ServiceSpec, registration_body

__all__ = [
    "OWNER_KEY",
    "CheckSpec",
    "HostSettings",
    "Plan",
    "Registrar",
    "RegistrarConfig",
    "ServiceSpec",
    "load_config",
    "make_plan",
    "registration_body",
    "services_for",
]
