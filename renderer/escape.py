"""Turning untrusted strings into nginx tokens that cannot add or change a directive.

Every ``{{ expression }}`` in a template becomes exactly one nginx token. A value made only of safe
characters is written as it is; anything else is written as a double-quoted string in which ``\\`` and
``"`` are escaped, newlines, tabs and carriage returns use nginx's escapes, other control characters
are dropped, and ``$`` (which nginx would expand as a variable even inside quotes) becomes ``%24``.

``NginxText`` is the one marker of text that is written as it is: only this module's functions, the
template module's own filters and the output of macros make it (see renderer/template.py). It is not
``markupsafe.Markup``, which Jinja's HTML filters also produce, and every operation on it (``~``,
``replace``, slicing, any filter) gives a plain ``str`` again, which is escaped when it is output.
"""

from __future__ import annotations

import re

__all__ = ["NGINX_NAME", "NginxText", "nginx_ident", "nginx_token", "trusted_ident", "trusted_token"]

_SAFE = re.compile(r"[A-Za-z0-9_.:/@%+=,~^*!?()\[\]<>|&-]+")  # fullmatch: `$` would allow a final newline
_IDENT_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "$": "%24"}
# A name nginx takes as an upstream name, in proxy_pass http://NAME and in server_name NAME.example.com:
# dot-separated non-empty labels (a leading '.' would make a server_name a wildcard), at most 1024 long
# (nginx reads at most 4 KiB per token).
NGINX_NAME = re.compile(r"(?=.{1,1024}\Z)[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


class NginxText(str):
    """Text already safe for nginx: written as it is. Made only by this project's escaping, never by Jinja."""

    __slots__ = ()

    def __html__(self) -> str:
        # Inside {% autoescape %}, Jinja HTML-escapes what is not "HTML": that would break our quoting.
        return str(self)


def nginx_token(value: object) -> str:
    """Return ``value`` as one nginx token: bare when harmless, otherwise quoted and escaped."""
    text = str(value)
    if _SAFE.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            continue  # other control characters have no business in a config file
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def nginx_ident(value: object) -> str:
    """Return ``value`` as a name nginx accepts anywhere (upstream names, zone names): [A-Za-z0-9_.-]."""
    text = _IDENT_BAD.sub("_", str(value))
    return text or "_"


def trusted_token(value: object) -> NginxText:
    """``nginx_token(value)``, marked as text to write as it is."""
    return NginxText(nginx_token(value))


def trusted_ident(value: object) -> NginxText:
    """``nginx_ident(value)``, marked as text to write as it is."""
    return NginxText(nginx_ident(value))
