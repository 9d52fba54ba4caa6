"""The companion's public names are pinned."""

import healthchecks


def test_public_names() -> None:
    assert sorted(healthchecks.__all__) == sorted(
        [
            "OWNER_KEY",
            "CheckSpec",
            "HostSettings",
            "Plan",
            "Registrar",
            "RegistrarConfig",
            "ServiceSpec",
            "load_config",
            "make_plan",
            "registration_body",
            "services_for",
        ]
    )
    assert all(hasattr(healthchecks, name) for name in healthchecks.__all__)
    assert healthchecks.OWNER_KEY == "upstreams-registrar"
