"""A small model of nginx's config tokenizer (ngx_conf_read_token), to see which directives a text holds."""

from __future__ import annotations


def tokens(text: str) -> list[str]:
    """Split like nginx: whitespace separates, ';' '{' '}' are tokens, '#' starts a comment, quotes group."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            out.append(ch)
            i += 1
        elif ch in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j : j + 2])
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            if j >= n:
                raise ValueError("unterminated quoted string")
            out.append("Q:" + "".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{}\"'":
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                j += 1
            out.append(text[i:j])
            i = j
    return out


def directives(text: str) -> list[str]:
    """The name of every directive and block, in order."""
    names, expect_name = [], True
    for tok in tokens(text):
        if tok in (";", "{", "}"):
            expect_name = True
        elif expect_name:
            names.append(tok)
            expect_name = False
    return names
