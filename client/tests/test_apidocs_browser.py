"""A service's API documentation page (`ticketing_common._apidocs`) in a real browser: Debian's
chromium driven by Playwright, offline (every request to another host is aborted), under the
page's own Content-Security-Policy.

The service is tickets, as its tests build it (in-memory Mongo and bus), served by uvicorn on
a free port. Swagger UI must render its operations and run one, with no policy violation, no
error in the console and no failed request. A missing browser is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from ticketing_common.bus.memory import InMemoryBus
from ticketing_testing.apps import TEST_JWT_KEY, serving_in_thread
from ticketing_testing.mongo import in_memory_mongo
from ticketing_tickets.main import create_app
from ticketing_tickets.settings import Settings

pytestmark = pytest.mark.connected


CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = "/api/tickets/docs"
# Every violation of the page's policy, as the page itself sees them (added through DevTools,
# which the policy does not govern).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`);
});
"""
expect.set_options(timeout=15_000)


def tickets_app() -> FastAPI:
    settings = Settings(environment="test", jwt_key=TEST_JWT_KEY)
    app = create_app(settings, mongo=in_memory_mongo(), bus=InMemoryBus(settings.service_name))
    assert app.docs_url is None, "FastAPI's own page (a CDN, an inline script) is still on"
    return app


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """Tickets under uvicorn, in a thread, on a free port of 127.0.0.1: its URL."""
    with serving_in_thread(tickets_app(), name="tickets-docs") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose every request to another host is aborted, and what went wrong on it."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.elsewhere: list[str] = []
        self.failed: list[str] = []
        self.console: list[str] = []
        self.page.add_init_script(RECORD_VIOLATIONS)
        self.page.route("**/*", self._only_loopback)
        self.page.on("requestfailed", self._failed)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _only_loopback(self, route: Route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            route.abort()

    def _failed(self, request: Request) -> None:
        self.failed.append(f"{request.url}: {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        # A policy violation is reported here as an error, as is a failed load.
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__violations")
        return found


def test_swagger_ui_renders_and_runs_the_services_operations_offline_under_its_policy(
    browser: Browser, service: str
) -> None:
    watched = Watched(browser)
    page = watched.page
    try:
        response = page.goto(f"{service}{DOCS}")
        assert response is not None
        assert response.status == 200
        # The policy was in force: no violation below means the page needs nothing it refuses.
        assert "script-src 'self';" in response.headers["content-security-policy"]
        create = page.locator('.opblock-post:has(.opblock-summary-path[data-path="/api/tickets"])')
        expect(create).to_be_visible()
        listing = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/api/tickets"])')
        expect(listing).to_be_visible()
        # Running one: "Try it out" fetches from the page's own origin, which the policy allows.
        listing.locator(".opblock-summary").click()
        listing.get_by_role("button", name="Try it out").click()
        listing.get_by_role("button", name="Execute").click()
        status = listing.locator(".live-responses-table tr.response .response-col_status")
        expect(status).to_have_text("200")
        page.wait_for_load_state("networkidle")
        assert watched.violations() == []
        assert watched.console == []
        assert watched.failed == []
        assert watched.elsewhere == []
    finally:
        watched.context.close()
