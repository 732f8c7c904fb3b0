"""A real browser for the tests of web pages: Debian's Chromium, driven by Playwright (which cannot fetch its own)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_APT = "DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(f"chromium is missing; install it with: {CHROMIUM_APT}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


def watched(page: Page) -> list[str]:
    """The page's own JavaScript errors and alerts, collected for the test to find none."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return problems
