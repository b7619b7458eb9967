"""Browser tests: Playwright for Python driving Debian's chromium (``/usr/bin/chromium``, which
``.ci/run`` installs; never ``playwright install``), headless, with a fresh profile per test.

A failing test leaves a full-page screenshot in ``tmp/artifacts/`` (or ``$DEPUTIZE_ARTIFACTS``).
Without chromium the tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

CHROMIUM = os.environ.get("DEPUTIZE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("DEPUTIZE_ARTIFACTS", Path(__file__).resolve().parents[2] / "tmp" / "artifacts")
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(params=["sqlite"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Browser tests use SQLite only: the pages do not depend on it (the HTTP tests cover both)."""
    yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'deputize.db'}"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[BrowserContext]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must run the browser tests (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 900, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(15_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
