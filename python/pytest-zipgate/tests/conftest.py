"""The plugin's tests: the outer session uses the installed plugin's fixtures
directly (test_client.py); test_plugin.py runs inner sessions with pytester."""

from pathlib import Path

import pytest

from pytest_zipgate import find_binary

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def real_zipgate() -> Path:
    """The zipgate binary these tests run (found as the plugin finds it)."""
    return find_binary().path
