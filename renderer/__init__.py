"""The sidecar: Consul snapshots -> templates -> nginx, checked and reloaded safely (``upstreams``).

Modules, from the pure core to the edges:

* ``config``     the sidecar's TOML file: [consul], [wait], [nginx], [status], [[template]]
* ``template``   Jinja2 in its sandbox, fed by a Snapshot; ``escape`` quotes values for nginx
* ``sandbox``    the Jinja2 environment (immutable sandbox, escaping made structural); ``template_errors``
                 template errors as sentences naming the file and line
* ``reader``     what a render reads from the snapshot, recorded as it reads; ``functions`` the
                 consul-template ports (ls, tree, nodes, byTag, ...); ``templates/nginx.j2`` the macro library
* ``block_cache`` an ``upstream`` macro call equal to the last render's reuses its text; ``block_loop``
                 ``nginx.upstreams``' loop run in Python; ``recent`` keeps what the last render used
* ``round``      one round, decided by pure functions: render, what the templates need, what to do
* ``outcome``    what an apply's result means (pure)
* ``exclusion``  which instance a line nginx rejected was written from (pure); ``left_out`` keeps them
* ``debounce``   the quiescence policy (wait.min / wait.max) over a given clock; ``quiescence`` waits on it
* ``apply``      compare bytes, write atomically, check, reload; restore on failure (``changes``: the writes
  and their restore, ``backups``: DEST.bak by hard link, ``files``: atomic writes; ``readback``: the
  texts read back between applies and the way a change goes)
* ``dynamic/``   ``[nginx] dynamic``: server-only changes pushed to nginx's Lua balancer (``lua/upstreams/``)
* ``nginx``      the Nginx Protocol and the real nginx (check command, SIGHUP to the master)
* ``applier``    carrying out a complete round and its verdict; ``reload_retry`` tells nginx again
* ``state``      health and status; ``token_guard`` waits for a usable ACL token
* ``runtime``    config, templates, policy and nginx control, swapped as one value on SIGHUP
* ``template_watch`` the template folders, watched from a task
* ``daemon``     the Sidecar: one TaskGroup tying it together; ``metrics`` its Prometheus metrics
* ``cli``        ``upstreams check|render|watch|status|convert|demo``; ``status`` prints a running sidecar's
                 view (``status``); ``demo`` is loaded by name from the ``demo`` package
* ``convert/``   ``upstreams convert``: consul-template's HCL config and Go templates -> TOML and Jinja2
"""

from .apply import Outcome, apply_renders
from .config import SidecarConfig, TemplateConfig, load_config
from .daemon import Sidecar
from .nginx import CommandNginx, Nginx
from .round import Action, Decision, RoundInput, decide_round
from .template import Rendered, TemplateSet

__all__ = [
    "Action",
    "CommandNginx",
    "Decision",
    "Nginx",
    "Outcome",
    "Rendered",
    "RoundInput",
    "Sidecar",
    "SidecarConfig",
    "TemplateConfig",
    "TemplateSet",
    "apply_renders",
    "decide_round",
    "load_config",
]
