"""What can be done to the prime service's replicas, by the story or by keys; each says what it does."""

from __future__ import annotations

from .board import Board, Row
from .replicas import Replica, ReplicaSet

__all__ = ["Actions"]


class Actions:
    """Start, fail, recover and kill replicas, keeping the board in step."""

    def __init__(self, board: Board, replicas: ReplicaSet) -> None:
        self.board = board
        self.replicas = replicas
        self.next_number = 1

    async def start(self) -> Replica:
        """Start the next replica; return it."""
        number = self.next_number
        self.next_number += 1
        replica = await self.replicas.start(number)
        self.board.add(replica)
        self.board.say(f"started {replica.name} on 127.0.0.1:{replica.port}")
        return replica

    def _running(self, name: str) -> Row | None:
        row = self.board.rows.get(name)
        if row is None or not row.running:
            self.board.say(f"there is no running replica {name}")
            return None
        return row

    async def fail(self, name: str) -> None:
        """Make a replica's check fail."""
        if row := self._running(name):
            self.board.say(f"{name}: its health check now fails (/tmp/fail created)")
            await self.replicas.fail(row.replica)

    async def recover(self, name: str) -> None:
        """Make a replica's check pass again."""
        if row := self._running(name):
            self.board.say(f"{name}: its health check passes again (/tmp/fail removed)")
            await self.replicas.recover(row.replica)

    async def kill(self, name: str) -> None:
        """Kill a replica."""
        if row := self._running(name):
            self.board.say(f"{name}: killed")
            row.running = False
            await self.replicas.kill(row.replica)
