"""The companion's edge to a container engine (Docker, or Podman's Docker-compatible socket).

* ``values``         frozen PortBinding, ContainerInfo, ContainerEvent, ExecResult; the Engine Protocol
* ``inspect``        inspect answers and raw events -> those values (pure)
* ``events``         which events matter to the companion (the policy)
* ``bridge``         the synchronous SDK's blocking stream, read by a thread, into the event loop
* ``docker_engine``  DockerEngine: the Engine through the ``docker`` SDK; SDK errors -> EngineError
* ``proctree``       killing a timed-out check's host process tree through /proc
* ``exec_monitors``  ending Podman's lingering exec monitors once a check's exit code is read
* ``unix_socket``    why an engine's unix socket cannot be reached, in words that say what to start
"""

from .docker_engine import DockerEngine, engine_errors
from .events import is_relevant
from .inspect import container_from_inspect
from .unix_socket import socket_problem
from .values import CONNECTED, ContainerEvent, ContainerInfo, Engine, ExecResult, PortBinding

__all__ = [
    "CONNECTED",
    "ContainerEvent",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "ExecResult",
    "PortBinding",
    "container_from_inspect",
    "engine_errors",
    "is_relevant",
    "socket_problem",
]
