"""One harness for starting the real parts: used by the demo, the tests and the benchmarks alike.

Each part is launched from one recipe here; tests and benchmarks run it synchronously, the demo as an
asynchronous ``process.Child`` in its own session. Every address is on 127.0.0.1 and every port a free one.

* ``process``  ``Child`` (asynchronous, named after its part), ``PartFailed``, ``stop_process``, ``kill_mentioning``
* ``ports``    free loopback ports, waiting for a listener, why a port cannot be listened on
* ``consul``   a Consul agent (``-dev``, or a one-node server keeping its data), and waiting for its leader
* ``nginx``    nginx under a prefix of its own: a front server on a rendered upstream, static backends
* ``lua``      that nginx with the Lua module and the ``[nginx] dynamic`` snippet, and its update endpoint
* ``image``    the busybox image built from busybox-static, imported without a registry
* ``engines``  a private Podman or dockerd (``EngineDaemon``); ``podman`` the same Podman, asynchronously
* ``sidecar``  the project's console scripts; ``upstreams watch`` against a given Consul and nginx
* ``sockets``  counting a process's TCP connections (from /proc); ``waiting`` polling until a state
* ``cluster``  a Consul cluster: servers and client agents, each on its own loopback address
"""
