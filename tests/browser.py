"""A real headless Chromium for the dashboard's tests: Debian's ``chromium`` package driven by
Playwright for Python (never ``playwright install``: no browser downloads). Tests that need it
skip with the reason when either part is missing; ``.ci/chromium.sh`` installs both."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str:
    """Why no browser test can run here, or '' when one can."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"no Chromium at {CHROMIUM}: run `bash .ci/chromium.sh` (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is missing: pip install -e '.[dev]' (or bash .ci/chromium.sh)"
    return ""


def executable() -> str:
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
