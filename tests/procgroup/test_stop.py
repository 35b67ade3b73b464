"""procgroup: what we started ends, SIGTERM first, SIGKILL after the grace period, the
whole group, even members that outlive their leader."""

import subprocess
import sys
import time

import psutil

from procgroup import stop_group, stop_processes

# A leader that starts a member of its own group which ignores SIGTERM, prints its pid,
# then waits; with `stubborn` the leader ignores SIGTERM too.
GROUP = """
import signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
member = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True);"
    " time.sleep(600)"], stdout=subprocess.PIPE)
member.stdout.readline()  # it ignores SIGTERM from now on
print(member.pid, flush=True)
time.sleep(600)
"""


def start_group(kind: str) -> tuple[subprocess.Popen, psutil.Process]:
    leader = subprocess.Popen(
        [sys.executable, "-c", GROUP, kind],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    member = psutil.Process(int(leader.stdout.readline()))
    return leader, member


def gone(proc: psutil.Process) -> bool:
    """Ended: reaped, or a zombie its (sleeping) parent has not reaped yet."""
    psutil.wait_procs([proc], timeout=5)
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_leader_that_obeys_sigterm_ends_at_once_and_its_stubborn_member_is_killed():
    leader, member = start_group("polite")
    started = time.monotonic()
    stop_group(leader, grace_s=10)
    assert time.monotonic() - started < 5  # the leader obeyed: no grace period spent
    assert leader.returncode == -15  # SIGTERM, reaped
    assert gone(member)


def test_a_leader_that_ignores_sigterm_is_killed_after_the_grace_period():
    leader, member = start_group("stubborn")
    started = time.monotonic()
    stop_group(leader, grace_s=1)
    took = time.monotonic() - started
    assert 1 <= took < 5, took
    assert leader.returncode == -9
    assert gone(member)


def test_stop_group_reaches_members_of_a_leader_that_exited_already():
    leader, member = start_group("polite")
    leader.terminate()  # only the leader; its member lives on in the group
    leader.wait(5)
    assert member.is_running()
    stop_group(leader, grace_s=1)
    assert gone(member)


def test_stop_processes_ends_only_the_listed_processes():
    leader, member = start_group("polite")
    try:
        stop_processes([member], grace_s=1)  # ignores SIGTERM: killed after 1 s
        assert gone(member)
        assert leader.poll() is None  # not listed: untouched
    finally:
        stop_group(leader, grace_s=1)
