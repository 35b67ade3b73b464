"""Finding processes that outlived what started them: one scan for every test folder."""

from __future__ import annotations

import os

import psutil


def gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line contains `text` (e.g. this session's temp folder),
    wherever they hang in the process tree: an orphaned Locust worker is no longer our child.
    Other sessions' processes on the same machine do not match."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if text in cmdline and proc.pid != os.getpid() and not gone(proc.pid):
            found.append(proc)
    return found
