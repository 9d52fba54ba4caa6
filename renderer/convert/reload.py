"""consul-template's ``command`` -> our ``[nginx]`` table, when the command only checks and reloads nginx."""

from __future__ import annotations

import itertools
import os.path
import re
import shlex
from dataclasses import dataclass

__all__ = ["NginxPlan", "nginx_plan"]

CHECK = ("nginx", "-t", "-q")
_KILL = re.compile(
    r"\A(?:sudo\s+)?kill\s+(?:-HUP|-SIGHUP|-1|-s\s+(?:SIG)?HUP)\s+"
    r"(?:\$\(\s*cat\s+(?P<a>[^\s()`$;|&]+)\s*\)|`\s*cat\s+(?P<b>[^\s()`$;|&]+)\s*`)\s*\Z"
)
_SHELL = re.compile(r"[;|<>`$()\n]")
_HUP = {"HUP", "SIGHUP", "1"}


@dataclass(frozen=True)
class NginxPlan:
    """How nginx is checked and reloaded: a pid file to signal, or a reload command."""

    check_command: tuple[str, ...] = CHECK
    pid_file: str | None = None
    reload_command: tuple[str, ...] | None = None


def nginx_plan(command: str | list[str]) -> NginxPlan | None:
    """The [nginx] settings a command stands for, or None when it does anything but check and reload nginx."""
    if isinstance(command, list):
        return _reload(tuple(command), CHECK)
    text = command.strip()
    parts = [p.strip() for p in text.split("&&")]
    check: tuple[str, ...] = CHECK
    found: NginxPlan | None = None
    for part in parts:
        kill = _KILL.match(part)
        if kill:
            plan: NginxPlan | None = NginxPlan(check, pid_file=kill["a"] or kill["b"])
        elif _SHELL.search(part):
            return None  # pipes, redirections, substitutions: more than a reload
        else:
            try:
                argv = tuple(shlex.split(part))
            except ValueError:
                return None
            if _is_check(argv):
                check = (*CHECK, *_nginx_options(argv))
                continue
            plan = _reload(argv, check)
        if plan is None or found is not None:
            return None  # something else, or two reloads
        found = plan
    if found is None:
        return None
    # An explicit "nginx -t ..." in the chain says what to check; else what the reload form implies.
    return NginxPlan(check if check != CHECK else found.check_command, found.pid_file, found.reload_command)


def _strip_sudo(argv: tuple[str, ...]) -> tuple[str, ...]:
    return argv[1:] if argv[:1] == ("sudo",) else argv


def _is_nginx(word: str) -> bool:
    return os.path.basename(word) == "nginx"


def _is_check(argv: tuple[str, ...]) -> bool:
    argv = _strip_sudo(argv)
    return bool(argv) and _is_nginx(argv[0]) and "-t" in argv[1:] and "-s" not in argv


def _nginx_options(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The -p/-c/-g options of an nginx command line, to check the same configuration it reloads."""
    argv, out = _strip_sudo(argv), []
    for flag, value in itertools.pairwise(argv[1:]):
        if flag in ("-p", "-c", "-g"):
            out += [flag, value]
    return tuple(out)


def _reload(argv: tuple[str, ...], check: tuple[str, ...]) -> NginxPlan | None:
    bare = _strip_sudo(argv)
    unit = ("nginx", "nginx.service")
    if bare[:2] == ("systemctl", "reload") and len(bare) == 3 and bare[2] in unit:
        return NginxPlan(check, reload_command=argv)
    if bare[:2] == ("systemctl", "kill") and bare[-1:] and bare[-1] in unit and _hup_flag(bare[2:-1]):
        return NginxPlan(check, reload_command=argv)
    if bare in (("service", "nginx", "reload"),):
        return NginxPlan(check, reload_command=argv)
    if bare and _is_nginx(bare[0]) and _signal_reload(bare[1:]):
        options = _nginx_options(bare)
        return NginxPlan(check if check != CHECK else (*CHECK, *options), reload_command=argv)
    return None


def _hup_flag(flags: tuple[str, ...]) -> bool:
    if len(flags) == 2 and flags[0] in ("-s", "--signal"):
        return flags[1].upper() in _HUP
    if len(flags) == 1 and flags[0].startswith("--signal="):
        return flags[0].split("=", 1)[1].upper() in _HUP
    return len(flags) == 1 and flags[0].startswith("-s") and flags[0][2:].upper() in _HUP


def _signal_reload(args: tuple[str, ...]) -> bool:
    """``-s reload``, with only -p/-c/-g options besides."""
    rest = list(args)
    seen = False
    while rest:
        flag = rest.pop(0)
        if flag == "-s" and rest and rest[0] == "reload":
            rest.pop(0)
            seen = True
        elif flag in ("-p", "-c", "-g") and rest:
            rest.pop(0)
        else:
            return False
    return seen
