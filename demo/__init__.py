"""``upstreams demo``: Consul, nginx, the sidecar, the companion and a replicated "prime" service on one
host, a scripted story of failures and recoveries, and measured latencies from Consul to nginx.

A package of its own, beside the daemons: it starts the real parts through ``harness`` and the daemons
through their console scripts, and ``renderer.cli`` loads ``demo.cli`` by name (no import cycle). Its live
view needs ``rich``, the ``demo`` extra; nothing here is imported until ``upstreams demo`` runs.

* ``cli``       the subcommand: its arguments (``options``) and running it
* ``stack``     start every part in order, play the story or follow keys, stop everything after
* ``consul``, ``nginx``, ``daemons``  the demo's Consul, nginx, sidecar and companion (from ``harness``)
* ``replicas``  the prime service's replicas: Podman containers, or local processes
* ``story``, ``actions``, ``keys``  what happens to the replicas, scripted or by key
* ``board``, ``latency``, ``health``, ``traffic``, ``view``  what is observed and shown
* ``workdir``   the temporary folder everything lives under
"""
