"""Fixtures shared by the end-to-end modules: one demo-model cache and one shared emulator
per module."""

import pytest

from emulator.launcher import EmulatorProcess


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A demo-model cache shared by every end-to-end run (the first one builds the model
    and the reference answers)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """A running emulator for runs given `--api-endpoint`."""
    with EmulatorProcess(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu
    # EmulatorProcess.stop raises if any model server it started outlived it
