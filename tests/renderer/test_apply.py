"""The apply pipeline: compare bytes, write atomically, check, reload; restore on any failure."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from plumbing.errors import NginxCheckFailed, NginxReloadFailed, OutputError
from renderer.apply import Outcome, apply_renders
from renderer.changes import Change, write_and_check
from renderer.config import TemplateConfig
from renderer.files import Written, write_atomic
from renderer.readback import Context


class CountingNginx:
    """A stand-in that counts calls; its check can be told to fail (nginx itself is tested end to end)."""

    def __init__(self, check_fails: bool = False, reload_fails: bool = False) -> None:
        self.checks = self.reloads = 0
        self.check_fails, self.reload_fails = check_fails, reload_fails
        self.seen: list[bytes] = []

    async def check(self) -> None:
        self.checks += 1
        if self.check_fails:
            raise NginxCheckFailed("nginx rejected the new config: test.")

    async def reload(self) -> None:
        if self.reload_fails:
            raise NginxReloadFailed("nginx is not running.")
        self.reloads += 1


def templates(tmp_path: Path, n: int = 2, backup: bool = False) -> list[TemplateConfig]:
    return [TemplateConfig(tmp_path / f"{i}.j2", tmp_path / f"out{i}.conf", backup=backup) for i in range(n)]


def test_unchanged_bytes_mean_no_write_no_check_no_reload(tmp_path: Path) -> None:
    (t,) = templates(tmp_path, 1)
    t.destination.write_text("same")
    mtime = t.destination.stat().st_mtime_ns
    nginx = CountingNginx()
    assert asyncio.run(apply_renders([(t, "same")], nginx)) is Outcome.UNCHANGED
    assert (nginx.checks, nginx.reloads) == (0, 0)
    assert t.destination.stat().st_mtime_ns == mtime


def test_several_changed_templates_get_one_check_and_one_reload(tmp_path: Path) -> None:
    ts = templates(tmp_path, 3)
    nginx = CountingNginx()
    assert asyncio.run(apply_renders([(t, f"new {i}") for i, t in enumerate(ts)], nginx)) is Outcome.RELOADED
    assert (nginx.checks, nginx.reloads) == (1, 1)
    assert [t.destination.read_text() for t in ts] == ["new 0", "new 1", "new 2"]


def test_failed_check_restores_every_file_byte_for_byte(tmp_path: Path) -> None:
    a, b = templates(tmp_path)
    a.destination.write_bytes(b"old a\x00\xff")  # any bytes, restored exactly
    nginx = CountingNginx(check_fails=True)
    with pytest.raises(NginxCheckFailed):
        asyncio.run(apply_renders([(a, "new a"), (b, "new b")], nginx))
    assert a.destination.read_bytes() == b"old a\x00\xff"
    assert not b.destination.exists()  # there was no file: there is none again
    assert nginx.reloads == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.conf"]


def test_failed_reload_leaves_the_checked_files_and_raises(tmp_path: Path) -> None:
    (t,) = templates(tmp_path, 1)
    with pytest.raises(NginxReloadFailed):
        asyncio.run(apply_renders([(t, "new")], CountingNginx(reload_fails=True)))
    assert t.destination.read_text() == "new"


def test_backup_keeps_the_previous_good_version(tmp_path: Path) -> None:
    (t,) = templates(tmp_path, 1, backup=True)
    t.destination.write_text("v1")
    first = t.destination.stat().st_ino
    asyncio.run(apply_renders([(t, "v2")], CountingNginx()))
    bak = Path(f"{t.destination}.bak")
    assert bak.read_text() == "v1"
    assert bak.stat().st_ino == first  # the previous file itself, linked: no copy written
    with pytest.raises(NginxCheckFailed):
        asyncio.run(apply_renders([(t, "v3-bad")], CountingNginx(check_fails=True)))
    assert t.destination.read_text() == "v2"
    assert bak.read_text() == "v1"
    asyncio.run(apply_renders([(t, "v3")], CountingNginx()))
    assert (t.destination.read_text(), bak.read_text()) == ("v3", "v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.conf", "out0.conf.bak"]  # no stray links


def test_backup_is_written_where_no_link_can_be_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (t,) = templates(tmp_path, 1, backup=True)
    t.destination.write_text("v1")

    def no_links(*_: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr("renderer.backups.os.link", no_links)
    asyncio.run(apply_renders([(t, "v2")], CountingNginx()))
    assert Path(f"{t.destination}.bak").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.conf", "out0.conf.bak"]


def test_perms_are_applied_and_existing_mode_kept_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"x", 0o640)
    assert path.stat().st_mode & 0o777 == 0o640
    write_atomic(path, b"y")
    assert path.stat().st_mode & 0o777 == 0o640


def test_write_into_a_missing_folder_is_an_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"Cannot create a temporary file beside .*/nope/f"):
        write_atomic(tmp_path / "nope" / "f", b"x")


def test_a_destination_written_is_compared_from_memory_until_anyone_else_touches_it(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    written = Written()
    data = b"upstream a {}\n"
    write_atomic(dest, data)
    written.remember(dest, data)
    assert written.read(dest) is data  # not read again: the very bytes written
    dest.write_bytes(b"upstream b {}\n")  # someone else, in place, same size
    assert written.read(dest) == b"upstream b {}\n"
    written.remember(dest, b"upstream b {}\n")
    os.utime(dest, ns=(1, 1))  # touched only
    assert written.read(dest) == b"upstream b {}\n" and written.read(dest) is not data
    dest.unlink()
    assert written.read(dest) is None


def test_a_second_change_reads_what_the_first_wrote_from_memory(tmp_path: Path) -> None:
    template = TemplateConfig(tmp_path / "t.j2", tmp_path / "a.conf")
    ctx = Context()
    nginx = CountingNginx()
    assert asyncio.run(apply_renders([(template, "upstream a {}\n")], nginx, ctx)) is Outcome.RELOADED
    template.destination.write_text("upstream z {}\n")  # changed behind the sidecar's back
    assert asyncio.run(apply_renders([(template, "upstream z {}\n")], nginx, ctx)) is Outcome.UNCHANGED
    assert asyncio.run(apply_renders([(template, "upstream a {}\n")], nginx, ctx)) is Outcome.RELOADED


class SlowCheckNginx(CountingNginx):
    """A check that takes ``seconds`` (nginx -t at 5,000 upstreams takes half a second)."""

    def __init__(self, seconds: float, check_fails: bool = False) -> None:
        super().__init__(check_fails=check_fails)
        self.seconds = seconds

    async def check(self) -> None:
        await asyncio.sleep(self.seconds)
        await super().check()


@pytest.mark.parametrize(
    ("check_takes", "made_in", "fails"), [(0.05, 0.0, False), (0.0, 0.05, True), (0.05, 0.0, True)]
)
def test_files_made_alongside_the_check_are_written_or_restored_with_the_rest(
    tmp_path: Path, check_takes: float, made_in: float, fails: bool
) -> None:
    dest, extra = tmp_path / "a.conf", tmp_path / "state.json"
    dest.write_bytes(b"old\n")
    nginx = SlowCheckNginx(check_takes, check_fails=fails)

    async def alongside() -> list[Change]:
        await asyncio.sleep(made_in)
        return [Change(extra, b"{}", None, durable=False)]

    async def run() -> None:
        await write_and_check([Change(dest, b"new\n", b"old\n")], nginx, check=True, alongside=alongside)

    if fails:
        with pytest.raises(NginxCheckFailed):
            asyncio.run(run())
        # Made after the check failed (cancelled), or before (written, then removed): never left behind.
        assert dest.read_bytes() == b"old\n" and not extra.exists()
    else:
        asyncio.run(run())
        assert dest.read_bytes() == b"new\n" and extra.read_bytes() == b"{}"
