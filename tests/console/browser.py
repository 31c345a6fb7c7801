"""Real Chromium (Debian's package, /usr/bin/chromium) driven by Playwright; no browser is
downloaded. `make test` installs the Debian packages chromium and chromium-driver."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Where screenshots go: docs/images when CONSOLE_SCREENSHOTS names it (make screenshots).
# (Not OPENNSPS_*: those are configuration overrides.)
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: `make test` installs the Debian packages "
            "chromium and chromium-driver"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(fallback: Path) -> Path:
    target = Path(SCREENSHOTS) if SCREENSHOTS else fallback
    target.mkdir(parents=True, exist_ok=True)
    return target
