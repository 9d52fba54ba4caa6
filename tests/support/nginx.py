"""The real nginx the tests start: the harness's (harness/nginx.py); ``NGINX`` the binary they run."""

import os

from harness.nginx import NginxServer, nginx_binary

__all__ = ["NGINX", "NginxServer"]

# NGINX_BIN lets the suite run against another nginx (a Nix dev shell, say), as CONSUL_BIN does for Consul.
NGINX = nginx_binary(os.environ) or "/usr/sbin/nginx"
