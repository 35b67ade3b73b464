"""Session-wide guard: the suite leaves no process behind.

Individual fixtures stop what they start and check it; this catches what slips past them
(an orphaned model server, Locust worker, emulator or kfp.local task): any descendant of
pytest, or any process whose command line names this session's temp folder, still alive
at the end fails the session (after being killed, so CI's machine stays clean).
"""

import time

import psutil
import pytest

from tests.processes import gone, processes_mentioning


def _jsii_kernel(proc: psutil.Process) -> bool:
    """CDKTF's jsii runtime: a Node.js process that lives as long as the interpreter that
    loaded it (the infra tests), stopped by jsii's own atexit hook, after this check."""
    try:
        chain = [proc, *proc.parents()]
        return any("jsii-runtime" in " ".join(p.cmdline()) for p in chain)
    except psutil.Error:
        return False


def _leftovers(marker: str) -> list[psutil.Process]:
    me = psutil.Process()
    found = {
        p.pid: p for p in me.children(recursive=True) if not gone(p.pid) and not _jsii_kernel(p)
    }
    found.update((p.pid, p) for p in processes_mentioning(marker))
    return list(found.values())


@pytest.fixture(scope="session", autouse=True)
def one_emulator_ca(tmp_path_factory):
    """Every emulator of the session shares one CA (emulator/ca.py): gRPC reads its root
    certificates once per process, and this process talks to many emulators."""
    import os

    os.environ["DEPLOYTEST_EMULATOR_CA_DIR"] = str(tmp_path_factory.mktemp("emulator-ca"))
    yield
    os.environ.pop("DEPLOYTEST_EMULATOR_CA_DIR", None)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_suite(tmp_path_factory):
    marker = str(tmp_path_factory.getbasetemp())
    yield
    deadline = time.monotonic() + 15
    left = _leftovers(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _leftovers(marker)
    described = []
    for proc in left:
        try:
            described.append(f"{proc.pid}: {' '.join(proc.cmdline())}")
            proc.kill()
        except psutil.Error:
            pass
    assert not described, "processes outlived the test suite:\n" + "\n".join(described)
