"""Fixtures shared by the tests."""
import pytest

from cli_utils import run_cli


@pytest.fixture
def cli():
    return run_cli
