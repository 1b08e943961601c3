"""The real browser the page tests use: Debian's chromium (``apt-get install chromium``), never a download.

Locally a missing browser skips those tests; in CI (``CI`` set to true, as ``.ci/run`` runs, or
``MMEVAL_REQUIRE_BROWSER=1``) it fails them, so a page is never reported tested without a browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: the switches every test's chromium runs with (no GPU, sandbox, background traffic or first-run pages)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_required() -> bool:
    """Whether a missing browser is a failure (CI) rather than a reason to skip (a developer's machine)."""
    flags = (os.environ.get("CI", ""), os.environ.get("MMEVAL_REQUIRE_BROWSER", ""))
    return any(f.strip().lower() in ("1", "true", "yes") for f in flags)


def _missing(reason: str) -> None:
    if browser_required():
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)", pytrace=False)
    pytest.skip(f"{reason} (CI installs it: apt-get install chromium)")


def require_chromium() -> Path:
    """The chromium binary; skips (locally) or fails (in CI) without it."""
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        _missing(f"{CHROMIUM} is not installed")
    return CHROMIUM


def require_playwright() -> None:
    """Playwright's Python package (the test extra) and chromium; skips (locally) or fails (in CI) without them."""
    require_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
