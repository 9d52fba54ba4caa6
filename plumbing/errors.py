"""The one exception tree of the project.

Every error a user can cause is an ``UpstreamsError``; its message is one sentence that names the file,
key, service, template or command at fault, so the command line prints it as it is, without a traceback.
Third-party errors are translated at the edge with ``raise ... from exc``.

    UpstreamsError
    ├── ConfigError            a config file, flag, service file or environment value is invalid
    ├── TemplateError          a template cannot be parsed or rendered (syntax, unknown function, sandbox)
    ├── ConsulError            Consul cannot answer a request
    │   ├── ConsulUnavailable      unreachable, timed out, no leader or a 5xx answer (retried)
    │   └── ConsulDenied           the ACL token is missing, invalid or lacks a permission
    ├── OutputError            a rendered file cannot be written, backed up or restored
    ├── NginxError             nginx refused a config or a reload
    │   ├── NginxCheckFailed       the check command failed; the previous files were restored
    │   ├── NginxReloadFailed      the reload could not be signalled or its command failed
    │   │   └── NginxNotRunning        there is no nginx to reload (no pid file, or no such process)
    │   └── DynamicPushFailed      nginx's update endpoint did not take a runtime update (dynamic mode)
    │       ├── DynamicUpdateInvalid   the sidecar refused to push data (or read back data) it cannot vouch for
    │       └── DynamicRefused         the endpoint answered no (400, 409 stale generation, 413)
    └── EngineError            the container engine cannot be reached or refused a request
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConsulDenied",
    "ConsulError",
    "ConsulUnavailable",
    "DynamicPushFailed",
    "DynamicRefused",
    "DynamicUpdateInvalid",
    "EngineError",
    "NginxCheckFailed",
    "NginxError",
    "NginxNotRunning",
    "NginxReloadFailed",
    "OutputError",
    "TemplateError",
    "UpstreamsError",
    "first_line",
    "unwrap_group",
]


class UpstreamsError(Exception):
    """Root of every error this project raises on purpose; the message is a full sentence."""


class ConfigError(UpstreamsError):
    """Raised at start-up (or on SIGHUP) when configuration is invalid; names the file and key."""


class TemplateError(UpstreamsError):
    """Raised when a template cannot be parsed or rendered; names the template file and line."""


class ConsulError(UpstreamsError):
    """Raised when Consul cannot answer a request."""


class ConsulUnavailable(ConsulError):
    """Raised when Consul is unreachable, times out, has no leader or answers 5xx; callers retry."""


class ConsulDenied(ConsulError):
    """Raised when Consul refuses the ACL token (403), or the token lacks a needed permission."""


class OutputError(UpstreamsError):
    """Raised when a rendered file cannot be written, backed up or restored; names the path."""


class NginxError(UpstreamsError):
    """Raised when nginx refuses a new configuration or a reload."""


class NginxCheckFailed(NginxError):
    """Raised when the check command rejects the rendered files; the previous files are back in place."""


class NginxReloadFailed(NginxError):
    """Raised when nginx cannot be told to reload (no pid file, dead master, failing command)."""


class NginxNotRunning(NginxReloadFailed):
    """Raised when there is no nginx to reload; the checked files are in place for when it starts."""


class DynamicPushFailed(NginxError):
    """Raised when nginx's update endpoint cannot be reached or does not take an update; the change
    then takes the reload path (the files were written first, so that is always correct)."""


class DynamicUpdateInvalid(DynamicPushFailed):
    """Raised when an update (or an answer read back from the endpoint) breaks the peer format's rules;
    such data is never pushed."""


class DynamicRefused(DynamicPushFailed):
    """Raised when the endpoint refuses an update; ``current`` is its generation when it says (409)."""

    def __init__(self, message: str, *, status: int, current: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.current = current


class EngineError(UpstreamsError):
    """Raised when the container engine cannot be reached or refuses a request."""


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first UpstreamsError inside a TaskGroup's exception group, else the group itself.

    A daemon's TaskGroup wraps a child's error in an ExceptionGroup; the command line wants the
    sentence of our own error, not a tree of tracebacks.
    """
    for exc in group.exceptions:
        if isinstance(exc, UpstreamsError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = unwrap_group(exc)
            if isinstance(inner, UpstreamsError):
                return inner
    return group


def first_line(exc: BaseException) -> str:
    """A third-party error's first line without its final period, to end one of our sentences."""
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
