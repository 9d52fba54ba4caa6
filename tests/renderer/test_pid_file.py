"""The pid file is trusted only as far as the process it names is nginx's master (issue 14, section 3)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing.errors import NginxNotRunning
from renderer.config import NginxConfig
from renderer.nginx import CommandNginx, is_nginx_master, names_master
from renderer.reload_retry import runs_files_written_at
from tests.renderer.conftest import register_backend
from tests.support.consul_agent import ConsulAgent
from tests.support.nginx import NginxServer
from tests.support.sidecar import UPSTREAMS, write_config
from tests.support.waiting import wait_until


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not nginx: SIGHUP would kill it."""
    proc = subprocess.Popen(["sleep", "60"])
    # Popen returns once exec has begun; the kernel renames the process a moment later.
    comm = Path(f"/proc/{proc.pid}/comm")
    wait_until(lambda: comm.read_text().strip() == "sleep", what="the child named sleep")
    yield proc
    proc.kill()
    proc.wait()


def reload_with(pid_file: Path) -> None:
    asyncio.run(CommandNginx(NginxConfig(pid_file=pid_file)).reload())


@pytest.mark.parametrize(
    ("cmdline", "exe", "master"),
    [
        ("nginx: master process /usr/sbin/nginx -g daemon on;", "/usr/sbin/nginx", True),
        ("nginx: master process nginx -p /srv -c /srv/nginx.conf", None, True),  # exe unreadable: root's
        ("nginx: worker process", "/usr/sbin/nginx", False),
        ("nginx: cache manager process", "/usr/sbin/nginx", False),
        ("/usr/sbin/nginx -c /srv/nginx.conf", "/usr/sbin/nginx", True),  # master_process off
        ("/usr/sbin/nginx -c /srv/nginx.conf", "/usr/sbin/nginx (deleted)", True),  # upgraded underneath
        ("sleep 60", "/usr/bin/sleep", False),
        ("vim /etc/nginx/nginx.conf", "/usr/bin/vim", False),
        ("python3 -m nginx_tool", None, False),
        ("", None, False),  # a zombie
    ],
)
def test_only_an_nginx_master_counts(cmdline: str, exe: str | None, master: bool) -> None:
    assert is_nginx_master(cmdline, exe) is master


def test_a_pid_file_naming_another_process_signals_nothing(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{stranger.pid}\n")
    with pytest.raises(NginxNotRunning) as caught:
        reload_with(pid_file)
    assert str(caught.value) == (
        f"{pid_file} names pid {stranger.pid} (sleep), which is not an nginx master; not signalling it."
    )
    assert stranger.poll() is None  # SIGHUP would have ended it


def test_a_stranger_started_after_the_files_were_written_does_not_run_them(
    tmp_path: Path, stranger: subprocess.Popen[bytes], nginx: NginxServer
) -> None:
    """The needless-reload shortcut (issue 14, section 6) asks the pid file's process only if it is nginx."""
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{stranger.pid}\n")
    long_before = 0.0  # on the boot clock: the stranger started well after "the write"
    assert not names_master(pid_file)
    assert not runs_files_written_at(CommandNginx(NginxConfig(pid_file=pid_file)), long_before)
    assert names_master(nginx.pid_file)  # the real master, which started after that write too, runs them
    assert runs_files_written_at(CommandNginx(NginxConfig(pid_file=nginx.pid_file)), long_before)


def test_a_missing_or_empty_pid_file_means_nginx_is_not_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "nginx.pid"
    with pytest.raises(NginxNotRunning, match="does not exist"):
        reload_with(pid_file)
    pid_file.write_text("")
    with pytest.raises(NginxNotRunning, match="is empty"):
        reload_with(pid_file)
    assert not names_master(pid_file) and not names_master(tmp_path / "missing.pid")


def test_the_real_nginx_master_is_signalled(nginx: NginxServer) -> None:
    reload_with(nginx.pid_file)
    wait_until(lambda: nginx.reloads() == 1, what="the master logging the SIGHUP it received")


@pytest.mark.slow
def test_render_with_a_stale_pid_file_leaves_the_stranger_alive(
    tmp_path: Path, consul: ConsulAgent, nginx: NginxServer, stranger: subprocess.Popen[bytes]
) -> None:
    register_backend(consul, nginx, "b2")
    config = write_config(tmp_path, consul, nginx)
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{stranger.pid}\n")
    config.write_text(config.read_text().replace(str(nginx.pid_file), str(stale)))
    out = subprocess.run(
        [UPSTREAMS, "render", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    # Like nginx not running: the checked files are in place for when it starts.
    assert out.returncode == 0, out.stderr
    assert f"{stale} names pid {stranger.pid} (sleep), which is not an nginx master" in out.stderr
    assert "nginx reloaded" not in out.stderr
    assert stranger.poll() is None
    assert f"127.0.0.1:{nginx.backends['b2']}" in (nginx.conf_d / "upstreams.conf").read_text()
    assert nginx.reloads() == 0
