"""The `aiport` pytest plugin users get when they install aiport."""

from __future__ import annotations

import pytest


def test_installed_plugin_gives_running_emulators(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json
        import urllib.request

        def test_function_fixture(aiport_emulator):
            request = urllib.request.Request(
                aiport_emulator.openai_base_url + "/models",
                headers={"Authorization": "Bearer any-key"},
            )
            with urllib.request.urlopen(request) as answer:
                assert json.load(answer)["object"] == "list"
            assert aiport_emulator.count("/v1/models") == 1

        def test_session_fixture(aiport_emulator_session):
            assert aiport_emulator_session.url.startswith("http://127.0.0.1:")
        """
    )
    # No -p option: the plugin must load through its pytest11 entry point.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
