"""Turning untrusted strings into nginx tokens that cannot add or change a directive.

Every ``{{ expression }}`` in a template becomes exactly one nginx token. A value made only of safe
characters is written as it is; anything else is written as a double-quoted string in which ``\\`` and
``"`` are escaped, newlines, tabs and carriage returns use nginx's escapes, other control characters
are dropped, and ``$`` (which nginx would expand as a variable even inside quotes) becomes ``%24``.
"""

from __future__ import annotations

import re

__all__ = ["nginx_ident", "nginx_token"]

_SAFE = re.compile(r"^[A-Za-z0-9_.:/@%+=,~^*!?()\[\]<>|&-]+$")
_IDENT_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "$": "%24"}


def nginx_token(value: object) -> str:
    """Return ``value`` as one nginx token: bare when harmless, otherwise quoted and escaped."""
    text = str(value)
    if text and _SAFE.match(text):
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
