"""Shared plumbing of both daemons: nothing here reads Consul, nginx or a container engine.

* ``errors``    the one exception tree of the project (drawn in its docstring)
* ``duration``  Go-style durations ("10s", "1m30s") parsed and formatted
* ``table``     typed reads of TOML tables, with errors that name the key
* ``latest``    a one-slot, newest-value-wins channel with versions
* ``logs``      logging set-up (text or JSON) and the "log at attempts 1, 2, 4, then every Nth" rule
* ``metrics``   the Prometheus registry helpers
* ``status``    the /health, /metrics and /status HTTP server
* ``systemd``   sd_notify readiness and status
"""
