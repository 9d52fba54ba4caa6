"""The template-folder watch: a task that calls back when a template (or a file it imports) changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .config import TemplateConfig

__all__ = ["is_template", "watch_template_files"]

SUFFIXES = frozenset({".j2", ".jinja", ".jinja2"})


async def watch_template_files(templates: Sequence[TemplateConfig], on_edit: Callable[[], None]) -> None:
    """Run until cancelled; ``on_edit`` is called in the event loop after each relevant change."""
    loop = asyncio.get_running_loop()
    observer = Observer()
    handler = _Handler(templates, lambda: loop.call_soon_threadsafe(on_edit))
    for folder in sorted({t.source.parent for t in templates}):
        observer.schedule(handler, str(folder), recursive=False)
    observer.daemon = True
    observer.start()
    try:
        await asyncio.Future()  # until cancelled
    finally:
        observer.stop()
        observer.join(timeout=5)


class _Handler(FileSystemEventHandler):
    def __init__(self, templates: Sequence[TemplateConfig], edited: Callable[[], object]) -> None:
        self.edited = edited
        self.ignored = {t.destination for t in templates}
        self.sources = {t.source for t in templates}
        # Imported or included templates live beside the sources with the same kind of name; other
        # files there (logs, rendered output) must not trigger renders, or a log line would loop.
        self.suffixes = {t.source.suffix for t in templates if t.source.suffix} | SUFFIXES

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = {
            Path(str(event.src_path)),
            Path(str(getattr(event, "dest_path", "") or event.src_path)),
        }
        if any(is_template(p, self.sources, self.suffixes) and p not in self.ignored for p in paths):
            self.edited()


def is_template(path: Path, sources: set[Path], suffixes: set[str]) -> bool:
    """A template source, or a file a template may import (same suffix), but not our temp files."""
    if path in sources:
        return True
    return path.suffix in suffixes and not path.name.startswith(".")
