"""The public names of ``discovery`` are pinned."""

import discovery


def test_public_names() -> None:
    assert sorted(discovery.__all__) == sorted(
        [
            "CatalogQuery",
            "ConfigError",
            "ConsulClient",
            "ConsulDenied",
            "ConsulError",
            "ConsulSettings",
            "ConsulUnavailable",
            "Dependency",
            "Instance",
            "KeyQuery",
            "NginxCheckFailed",
            "NginxError",
            "NginxNotRunning",
            "NginxReloadFailed",
            "OutputError",
            "ServiceQuery",
            "ServiceSummary",
            "Snapshot",
            "TemplateError",
            "UpstreamsError",
            "Watcher",
        ]
    )
    assert all(hasattr(discovery, name) for name in discovery.__all__)
    assert issubclass(discovery.NginxNotRunning, discovery.UpstreamsError)
