"""The services folder's edits, as calls of a function in the event loop (watchdog's inotify observer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

__all__ = ["watch_dir"]


async def watch_dir(directory: Path, changed: Callable[[], None]) -> None:
    """Call ``changed`` in the loop after each change in ``directory``, until cancelled."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    loop = asyncio.get_running_loop()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type not in ("opened", "closed_no_write"):  # reading a file changes nothing
                loop.call_soon_threadsafe(changed)

    observer = Observer()
    observer.schedule(Handler(), str(directory), recursive=False)
    observer.start()
    try:
        await asyncio.Event().wait()
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join, 5)
