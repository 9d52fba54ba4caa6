"""The sidecar's public names are pinned."""

import renderer


def test_public_names() -> None:
    assert sorted(renderer.__all__) == sorted(
        [
            "Action",
            "CommandNginx",
            "Decision",
            "Nginx",
            "Outcome",
            "Rendered",
            "RoundInput",
            "Sidecar",
            "SidecarConfig",
            "TemplateConfig",
            "TemplateSet",
            "apply_renders",
            "decide_round",
            "load_config",
        ]
    )
    assert all(hasattr(renderer, name) for name in renderer.__all__)
