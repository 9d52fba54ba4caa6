"""Translated pieces -> Jinja text for our environment (``trim_blocks``, ``lstrip_blocks``), so that it
renders exactly the whitespace Go would: a tag gets ``+`` where Jinja would otherwise drop a newline after
it or the indentation before it, and text Jinja would read as a tag goes inside ``raw``."""

from __future__ import annotations

import re

__all__ = ["jinja_text"]

_JINJA_OPEN = re.compile(r"\{[{%#]")


def jinja_text(raw: list[tuple[str, str]]) -> str:
    """Pieces (text, outputs, tags, comments) as Jinja text for our environment, whitespace kept exactly."""
    pieces = _merge(raw)
    out = []
    for i, (kind, content) in enumerate(pieces):
        before = pieces[i - 1] if i else ("start", "")
        after = pieces[i + 1] if i + 1 < len(pieces) else ("end", "")
        if kind == "text":
            out.append(_text(content, after))
        elif kind == "out":
            out.append("{{ " + content + " }}")
        else:
            left, right = _guards(before, after, first=i == 1)
            if kind == "comment":
                out.append("{#" + left + " " + content.replace("#}", "# }").strip() + " " + right + "#}")
            else:
                out.append("{%" + left + " " + content + " " + right + "%}")
    return "".join(out)


def _merge(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for kind, content in pieces:
        if kind == "text" and out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + content)
        elif kind != "text" or content:
            out.append((kind, content))
    return out


def _guards(before: tuple[str, str], after: tuple[str, str], first: bool) -> tuple[str, str]:
    """``+`` where lstrip_blocks would eat indentation before a tag or trim_blocks the newline after it.

    ``first``: the text before the tag starts the template, where Jinja also strips (a line starts there).
    """
    left = right = ""
    if before[0] == "text":
        text = before[1]
        tail = text[text.rfind("\n") + 1 :]
        if tail and not tail.strip(" \t") and ("\n" in text or first):
            left = "+"
    if after[0] == "text" and after[1].startswith("\n"):
        right = "+"
    return left, right


def _text(text: str, after: tuple[str, str]) -> str:
    """Template text as it is, with anything Jinja would read as a tag inside ``raw``."""
    if _JINJA_OPEN.search(text):
        return "{%+ raw %}" + text + "{%+ endraw +%}"
    if text.endswith("{") and after[0] != "end":
        # "{" right before a tag would make "{{%": only that brace goes inside raw.
        return text[:-1] + "{%+ raw %}{{% endraw %}"
    return text
