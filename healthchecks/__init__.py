"""The companion: keep a Consul agent's registrations equal to the running containers and service files.

Modules, from the pure core to the edges:

* ``spec``     frozen ServiceSpec / CheckSpec and their Consul 1.8 registration bodies (owner marker, digest)
* ``labels``   container labels and environment -> specs (registrator's conventions), with warnings
* ``files``    service files (TOML / JSON) -> specs
* ``plan``     desired specs vs. the agent's services -> what to register and deregister
* ``agent``    the local agent's HTTP API (list, register, deregister, update a TTL check)
* ``runner``   script and HEALTHCHECK checks the companion runs itself, reported to TTL checks
* ``config``   the ``[consul]``, ``[registrar]`` and ``[status]`` tables
* ``state``    what the companion knows of itself, for ``/health`` and ``/status``
* ``metrics``  its Prometheus metrics (``/metrics``)
* ``daemon``   one TaskGroup: engine events, the services folder, a timer and an agent probe trigger
  reconciles; the status endpoint; systemd readiness
* ``cli``      ``upstreams-registrar run|check``

The container engine itself is reached through ``engine`` (its own subpackage).
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
