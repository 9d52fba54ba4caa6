"""``upstreams convert``: consul-template's HCL config and Go templates -> sidecar.toml and Jinja2.

hclconfig (HCL and -template flags -> a plan), reload (a command -> [nginx]), golex + goparse (Go
template -> gonodes), expr + gofuncs + scratch + translate (nodes -> pieces), jinjatext (pieces -> Jinja2
text), report (what needs a hand), command (the CLI).
"""

from .command import add_parser, convert, run

__all__ = ["add_parser", "convert", "run"]
