"""Provider plug-ins: a real distribution's entry points, found by importlib.metadata.

The test plug-in (``aiport_test_provider/``, with its own pyproject) is made visible the
way pip would leave it: a ``*.dist-info`` directory with ``METADATA`` and
``entry_points.txt``, built from its pyproject, on a temporary ``sys.path`` entry.
"""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiport import ProviderRegistry, ProviderService
from aiport._errors import ConfigError
from aiport.testing import Emulator
from tests.conftest import OPENAI_KEY

PLUGIN = Path(__file__).resolve().parent / "aiport_test_provider"
MODULE = "aiport_test_provider"


def install(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]) -> None:
    """Write the ``.dist-info`` pip would write for a distribution into ``site``."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines: list[str] = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in points.items())
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test plug-in, installed: its dist-info and its code on sys.path."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    install(tmp_path, project["name"], project["version"], project["entry-points"])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN))
    sys.modules.pop(MODULE, None)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def acme_config(emulator: Emulator, **providers: dict[str, Any]) -> dict[str, Any]:
    return {"retry": {"max_attempts": 1}, "providers": providers}


async def test_service_builds_and_calls_a_plugin_provider(site: Path, emulator: Emulator) -> None:
    config = acme_config(
        emulator,
        acme={"type": "acme", "base_url": emulator.openai_base_url, "api_key": OPENAI_KEY},
    )
    registry = ProviderRegistry.default()
    assert MODULE not in sys.modules  # nothing imported until a plug-in type is asked for
    async with ProviderService(config, env={}, registry=registry) as service:
        assert MODULE in sys.modules
        response = await service.complete(model="acme:gpt-4o", messages="Hello there")
        assert response.text == "You said: Hello there"
        assert response.provider == "acme"
        assert response.usage.input_tokens == 5
        request = emulator.requests[-1]
        assert request.headers["x-acme-client"] == "aiport-test-provider"
        assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        streamed = [event async for event in service.stream(model="acme:gpt-4o", messages="Hi")]
        assert streamed[-1].response.text == "You said: Hi"
    provider_type = registry.get("acme")
    assert provider_type.api_key_env == "ACME_API_KEY"


async def test_entry_point_naming_a_function(site: Path, emulator: Emulator) -> None:
    config = acme_config(
        emulator,
        lazy={"type": "acme-lazy", "base_url": emulator.openai_base_url, "api_key": OPENAI_KEY},
    )
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model="lazy:gpt-4o", messages="Hi")
    assert response.text == "You said: Hi"


def test_listing_types_loads_plugins(site: Path) -> None:
    registry = ProviderRegistry.default()
    names = set(registry.names())
    assert {"acme", "acme-lazy", "openai", "groq"} <= names
    assert registry.types["acme"].description == "Acme chat (from the aiport-test-provider plug-in)"


def test_a_registry_built_by_hand_has_no_plugins(site: Path) -> None:
    assert "acme" not in ProviderRegistry().types
    assert MODULE not in sys.modules


async def test_a_broken_plugin_names_itself_and_spares_the_others(
    site: Path, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        site,
        "aiport-broken-plugin",
        "2.0",
        {
            "aiport.providers": {
                "broken": "aiport_no_such_module:TYPE",
                "misnamed": "aiport_test_provider:ACME",
                "openai": "aiport_test_provider:ACME",  # a built-in name: ignored
            }
        },
    )
    config = acme_config(
        emulator,
        broken={"type": "broken"},
        misnamed={"type": "misnamed"},
        openai={"type": "openai", "base_url": emulator.openai_base_url, "api_key": OPENAI_KEY},
    )
    with caplog.at_level(logging.WARNING, logger="aiport"):
        async with ProviderService(config, env={}) as service:
            with pytest.raises(ConfigError) as caught:
                service.get_provider("broken")
            [problem] = caught.value.problems
            assert problem.path == "providers.broken.type"
            assert "entry point 'broken = aiport_no_such_module:TYPE'" in problem.message
            assert "distribution 'aiport-broken-plugin 2.0'" in problem.message
            assert "ModuleNotFoundError" in problem.message
            with pytest.raises(ConfigError) as misnamed:
                service.get_provider("misnamed")
            assert "named 'acme'" in misnamed.value.problems[0].message
            # The unrelated providers still work, the built-in 'openai' among them.
            response = await service.complete(model="openai:gpt-4o", messages="Hi")
            assert response.text == "You said: Hi"
            assert service.registry.get("openai").description.startswith("OpenAI")
            listed = set(service.registry.names())
            assert {"broken", "misnamed", "acme"} <= listed
            assert "plug-in unavailable" in service.registry.get("broken").description
    assert any("built-in type" in r.getMessage() for r in caplog.records)
    assert any("aiport_no_such_module" in r.getMessage() for r in caplog.records)


def test_two_plugins_for_one_type_is_an_error(site: Path) -> None:
    install(site, "aiport-acme-fork", "9.9", {"aiport.providers": {"acme": "acme_fork:TYPE"}})
    registry = ProviderRegistry.default()
    provider_type = registry.get("acme")
    assert "offered by several plug-ins" in provider_type.description
    assert "aiport-acme-fork 9.9" in provider_type.description
    assert "aiport-test-provider 0.1.0" in provider_type.description
