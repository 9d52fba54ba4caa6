#!/usr/bin/env bash
# Check nginx's whole configuration, with the files the sidecar has just rendered, as an unprivileged user.
#
#   nginx-check.sh NGINX_BINARY MAIN_CONFIG
#
# `nginx -t` opens the pid file and every log file the config names, which an unprivileged checker may
# not do (/run/nginx and /var/log/nginx belong to nginx), and `-g 'pid ...;'` cannot help because a
# config that sets `pid` itself (NixOS's does) then fails with "directive is duplicate". So the main
# config is copied to a private temporary directory with these lines rewritten:
#   pid ...;               -> pid <tmp>/nginx.pid;   (added if the config has none)
#   error_log <file> ...   -> error_log stderr ...
#   access_log ...;        -> access_log off;
#   http {                 -> http { access_log off;   (else nginx opens its compiled-in access log)
#   include <relative>;    -> include <config dir>/<relative>;   (the copy lives elsewhere)
# Everything the copy includes by absolute path (the rendered upstream files among them) is read as it
# is, so the check sees exactly what nginx will load. Only the main file is rewritten: keep log and pid
# directives out of included files.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 NGINX_BINARY MAIN_CONFIG" >&2
  exit 2
fi
nginx=$1
conf=$2
confdir=$(cd "$(dirname "$conf")" && pwd)
case $confdir in
  *[\#\&\\]*)
    echo "$0: the config's directory $confdir has a character (#, & or \\) this script cannot rewrite" >&2
    exit 2
    ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/upstreams-nginx-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

{
  if ! grep -Eq '(^|[;{}])[[:space:]]*pid[[:space:]]' "$conf"; then
    echo "pid $work/nginx.pid;"
  fi
  # A directive starts a line or follows `;`, `{` or `}` (one line may hold several).
  start='(^|[;{}])([[:space:]]*)'
  sed -E \
    -e "s#${start}pid[[:space:]]+[^;]*;#\\1\\2pid $work/nginx.pid;#g" \
    -e "s#${start}error_log[[:space:]]+[^;[:space:]]+#\\1\\2error_log stderr#g" \
    -e "s#${start}access_log[[:space:]]+[^;]*;#\\1\\2access_log off;#g" \
    -e "s#${start}http[[:space:]]*[{]#\\1\\2http { access_log off;#g" \
    -e "s#${start}include[[:space:]]+([^/;[:space:]][^;]*);#\\1\\2include $confdir/\\3;#g" \
    "$conf"
} >"$work/nginx.conf"

"$nginx" -t -q -e stderr -p "$work/" -c "$work/nginx.conf"
