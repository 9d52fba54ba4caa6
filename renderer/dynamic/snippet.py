"""The http{}-level directives that enable runtime peer updates: ``upstreams nginx-snippet`` prints them.

Pure: a function of the config. The Lua code ships inside this Python package (renderer/lua/), so the
snippet points nginx's ``lua_package_path`` at the installed package's folder.
"""

from __future__ import annotations

from pathlib import Path

from plumbing.errors import ConfigError

from ..config import DynamicConfig, SidecarConfig

__all__ = ["BODY_CAP", "LOAD_MODULES", "LUA_DIR", "main_context", "render_snippet", "snippet"]

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
# Debian's lua-resty-core (ngx.balancer) and lua-cjson live here; without resty.core nginx refuses to start.
SYSTEM_LUA = "/usr/share/lua/5.1/?.lua"
LOAD_MODULES = (
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
)
BODY_CAP = "16m"  # the largest push; as the Lua side's own caps, see docs/operations.md
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")


_TEMPLATE = """# upstreams: runtime peer updates ([nginx] dynamic = true). Include this inside http {{}}.
# These two lines belong in nginx.conf's main context (outside http {{}}); `upstreams nginx-snippet --main`
# prints them alone:
{comment}
lua_package_path {package_path};
lua_shared_dict upstreams 32m;
# At worker start, never at init: a reload that fails must leave the live peer state as it is.
init_worker_by_lua_block {{ require("upstreams.worker").start({state}) }}

# The update endpoint: only on {listen}, never on a public server.
server {{
    listen {listen};
    server_name _;
    access_log off;
    # nginx's defaults, set so http {{}}'s do not apply: the sidecar keeps one connection between pushes
    # and closes it after 60 s idle, before nginx would, so nginx never closes it as a push goes out
    # (only a reload does). After 1000 requests nginx says so in an answer and the next one connects anew.
    keepalive_timeout 75s;
    keepalive_requests 1000;
    # Equal caps: every accepted body is held in memory, where the Lua handler reads it.
    client_max_body_size {cap};
    client_body_buffer_size {cap};
{rules}    deny all;
    error_page 413 = @too_large;
    location = /upstreams/peers {{
        default_type application/json;
        content_by_lua_block {{ require("upstreams.endpoint").handle() }}
    }}
    location @too_large {{
        default_type application/json;
        return 413 '{{"error": "The body is over the {cap_text} cap of this endpoint."}}\\n';
    }}
    location / {{
        default_type application/json;
        return 404 '{{"error": "Only /upstreams/peers is served here."}}\\n';
    }}
}}
"""


def main_context() -> str:
    """The ``load_module`` lines, which belong in nginx.conf's main context (outside ``http {}``)."""
    return "\n".join(LOAD_MODULES) + "\n"


def snippet(config: SidecarConfig) -> str:
    """The text to include in ``http {}`` for the config's ``[nginx] dynamic`` settings."""
    return render_snippet(config.nginx.dynamic)


def render_snippet(dynamic: DynamicConfig, lua_dir: Path = LUA_DIR) -> str:
    """The snippet for one endpoint and state file (``lua_dir`` holds the ``upstreams`` Lua package)."""
    # Defence in depth: the listen address is loopback already; nothing else may talk to it.
    allow = ("unix:",) if dynamic.unix is not None else ("127.0.0.0/8", "::1")
    return _TEMPLATE.format(
        comment="\n".join(f"# {line}" for line in LOAD_MODULES),
        package_path=_nginx_string(f"{_lua_path_part(lua_dir)}/?.lua;{SYSTEM_LUA};;"),
        state=_lua_string(str(dynamic.state_file)),
        listen=dynamic.where,  # loopback host:port (IPv6 in brackets) or unix:/path, as the config checked
        rules="".join(f"    allow {a};\n" for a in allow),
        cap=BODY_CAP,
        cap_text=BODY_CAP.replace("m", " MB"),
    )


def _lua_path_part(folder: Path) -> str:
    text = str(folder)
    # ';' separates entries of a Lua search path and '?' stands for the module name in it.
    if ";" in text or "?" in text:
        raise ConfigError(
            f"The Lua folder {text} has ';' or '?' in its path, which a Lua search path cannot hold."
        )
    return text


def _nginx_string(text: str) -> str:
    """A double-quoted nginx string: backslash and quote escaped, no variables ('$')."""
    if "$" in text or any(ord(ch) < 32 for ch in text):
        raise ConfigError(f"The path {text!r} has '$' or a control character, which nginx cannot take here.")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_string(text: str) -> str:
    """A Lua string literal with every byte but plain path characters escaped as \\ddd."""
    return '"' + "".join(chr(b) if chr(b) in _PLAIN else f"\\{b:03d}" for b in text.encode()) + '"'
