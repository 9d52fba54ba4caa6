"""A TCP proxy in front of a real Consul that can be told to misbehave.

Only for faults a real agent cannot be made to show on demand: answering 500 to everything,
accepting requests and never answering, or answering every service with no instances while the rest
passes (as a restarted Consul may for a moment, before anti-entropy). Changing the mode drops open
connections, so long polls reconnect and meet the new behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

PASS, ERROR_500, HANG, EMPTY_SERVICES = "pass", "error500", "hang", "empty-services"
_ANSWER_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\nConnection: close\r\n\r\nNo cluster leader"
)
_ANSWER_EMPTY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 1\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\n[]"
)
_SERVICE_READ = b"GET /v1/health/service/"


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_port, self.target_host = target_port, target_host
        self.mode = PASS
        self.emptied = 0  # service reads answered with no instances (EMPTY_SERVICES)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def set_mode(self, mode: str) -> None:
        def switch() -> None:
            self.mode = mode
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(switch)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == ERROR_500:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(_ANSWER_500)
                await writer.drain()
            elif self.mode == HANG:
                await reader.read()  # until the client gives up
            elif self.mode == EMPTY_SERVICES:
                await self._empty_services(reader, writer)
            else:
                await self._pipe_both(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _empty_services(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(_SERVICE_READ):
            self.emptied += 1
            writer.write(_ANSWER_EMPTY)
            await writer.drain()
            return
        # One request per connection (Consul closes after answering), so each request is seen here.
        lines = [line for line in head.split(b"\r\n")[:-2] if not line.lower().startswith(b"connection:")]
        await self._pipe_both(reader, writer, b"\r\n".join([*lines, b"Connection: close", b"", b""]))

    async def _pipe_both(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes = b""
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        self._writers.add(up_writer)
        up_writer.write(first)  # what was read to decide, before the rest is piped

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
