"""Open a page in real headless Chromium: its rendered DOM and every console message.

Skips (with the reason) where no Chromium is installed: `apt-get install -y chromium`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

_CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium on this machine (apt-get install -y chromium)")


def render(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """(the DOM after load and scripts, console lines) of `page` opened offline."""
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if _CONSOLE.search(line)]
    return done.stdout, console
