"""The web client in a real browser: Debian's chromium driven by Playwright, against the whole
stack on free ports, through the gateway, as a person uses it.

Every page visited is checked by axe-core (no serious or critical violation) and saved as a
screenshot under client/test-output/ (CLIENT_SCREENSHOTS=update also refreshes the committed
ones under client/screenshots/). A missing browser or axe-core is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from ticketing_client.main import create_app
from ticketing_client.settings import Settings
from ticketing_devstack.e2e import local_stack
from ticketing_devstack.stack import Stack
from ticketing_testing.apps import serving_in_thread

pytestmark = pytest.mark.connected

CLIENT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
AXE = CLIENT / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = CLIENT / "test-output"
COMMITTED = CLIENT / "screenshots"
# Main pages whose screenshots the README shows.
MAIN_PAGES = {"home", "ticket", "order", "order-complete", "orders", "signup-errors", "phone-home"}
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
# Short, so the expiry test is quick; long enough to pay in the journey on a busy machine.
EXPIRY = 15
ENV = {
    "ORDER_EXPIRATION_SECONDS": str(EXPIRY),
    "JWT_KEY": "browser-jwt-key-0123456789abcdef0123456789",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "LOG_LEVEL": "INFO",
}
PASSWORD = "password123"
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack(tmp_path_factory.mktemp("client-stack"), ENV) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    if not AXE.exists():
        pytest.fail(f"no {AXE}: run `npm ci` in client/ (make test does)")
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Site:
    """Browser contexts (one per person) on the stack's gateway."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base
        self.contexts: list[BrowserContext] = []

    def person(self, **options: Any) -> Page:
        context = self.browser.new_context(**{"base_url": self.base, **options})
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def site(browser: Browser, stack: Stack) -> Iterator[Site]:
    site = Site(browser, stack.urls["gateway"])
    yield site
    site.close()


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" "))}));
}"""


def check(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page is saved as a screenshot."""
    # Evaluated through DevTools, which the pages' Content-Security-Policy does not govern (it
    # refuses an inline <script>, as add_script_tag would add).
    page.evaluate(AXE.read_text())
    violations = page.evaluate(AXE_RUN)
    assert violations == [], f"{name}: {violations}"
    shot = OUTPUT / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if name in MAIN_PAGES and os.environ.get("CLIENT_SCREENSHOTS") == "update":
        COMMITTED.mkdir(exist_ok=True)
        shutil.copyfile(shot, COMMITTED / shot.name)


def nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


def sign_up(page: Page, email: str | None = None) -> str:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    page.goto("/auth/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(nav(page).get_by_role("link", name="My orders")).to_be_visible()
    return email


def sell(page: Page, title: str, price: str) -> str:
    """Sell a ticket; its id."""
    nav(page).get_by_role("link", name="Sell tickets").click()
    page.get_by_label("Title").fill(title)
    page.get_by_label("Price (USD)").fill(price)
    page.get_by_role("button", name="Sell ticket").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    match = re.search(r"/tickets/([0-9a-f]{24})$", page.url)
    assert match, page.url
    return match.group(1)


def order(page: Page, ticket_id: str) -> str:
    """Purchase the ticket; the order's id."""
    page.goto(f"/tickets/{ticket_id}")
    page.get_by_role("button", name="Purchase").click()
    page.wait_for_url(re.compile(r"/orders/[0-9a-f]{24}$"))
    return page.url.rsplit("/", 1)[1]


def ordered(site: Site, title: str, price: str) -> Page:
    """Someone sells a ticket and a buyer orders it: the buyer, on the order's page."""
    seller, buyer = site.person(), site.person()
    sign_up(seller)
    ticket_id = sell(seller, f"{title} {uuid.uuid4().hex[:6]}", price)
    sign_up(buyer)
    order(buyer, ticket_id)
    return buyer


def mark(page: Page) -> None:
    """Marks the loaded document: `unreloaded` checks later that it was never reloaded."""
    page.evaluate("window.__notReloaded = true")


def unreloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


# --- the journey ----------------------------------------------------------------------------------


def test_two_people_sell_buy_and_pay(site: Site) -> None:
    seller, buyer = site.person(), site.person()

    seller.goto("/")
    expect(nav(seller).get_by_role("link", name="Sign in")).to_be_visible()
    expect(nav(seller).get_by_role("link", name="Sign up")).to_be_visible()
    seller_email = sign_up(seller)
    title = f"Jazz night {uuid.uuid4().hex[:6]}"
    sell(seller, title, "19.9")
    expect(seller.get_by_text("$19.90")).to_be_visible()  # normalised to two decimals
    expect(seller.get_by_role("link", name="Edit")).to_be_visible()
    expect(seller.get_by_role("button", name="Purchase")).to_have_count(0)
    check(seller, "ticket-owner")

    buyer_email = sign_up(buyer)
    buyer.goto("/")
    expect(buyer.get_by_role("link", name=title)).to_be_visible()
    check(buyer, "home")
    buyer.get_by_role("link", name=title).click()
    expect(buyer.get_by_role("link", name="Edit")).to_have_count(0)
    check(buyer, "ticket")
    buyer.get_by_role("button", name="Purchase").click()
    buyer.wait_for_url(re.compile(r"/orders/[0-9a-f]{24}$"))
    expect(buyer.get_by_role("heading", level=1)).to_have_text(title)
    clock = buyer.locator("[data-clock]")
    expect(clock).to_have_text(re.compile(r"^0:(0\d|1[0-5])$"))
    first = clock.text_content()
    expect(clock).not_to_have_text(first or "")  # it counts down, live
    check(buyer, "order")

    # Each browser sees only its own session (no cookie ever shared through the client).
    expect(seller.get_by_text(f"Signed in as {seller_email}")).to_be_visible()
    expect(buyer.get_by_text(f"Signed in as {buyer_email}")).to_be_visible()
    seller.reload()
    expect(seller.get_by_text(f"Signed in as {seller_email}")).to_be_visible()
    expect(seller.get_by_text("Reserved")).to_be_visible()
    expect(seller.get_by_role("link", name="Edit")).to_have_count(0)

    buyer.get_by_label("Visa test card that succeeds").check()
    buyer.get_by_role("button", name=re.compile(r"^Pay \$19\.90$")).click()
    buyer.wait_for_url(re.compile(r"\?paid=1$"))
    mark(buyer)
    expect(buyer.get_by_text("Order complete.")).to_be_visible()
    expect(buyer.locator("[data-status-badge]")).to_have_text("Complete")
    assert unreloaded(buyer)
    check(buyer, "order-complete")

    nav(buyer).get_by_role("link", name="My orders").click()
    row = buyer.get_by_role("listitem").filter(has_text=title)
    expect(row.get_by_text("Complete")).to_be_visible()
    check(buyer, "orders")


def test_a_declined_card_says_so_and_the_order_stays_payable(site: Site) -> None:
    buyer = ordered(site, "Opera", "42")
    order_url = buyer.url

    buyer.get_by_label("Test card that is declined").check()
    buyer.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(buyer.get_by_role("alert")).to_contain_text("Your card was declined.")
    expect(buyer.get_by_text("Test mode")).to_be_visible()
    expect(buyer.get_by_label("Test card that is declined")).to_be_checked()
    check(buyer, "order-declined")

    # Following the order (as after paying; it is still open) sends the page's CSRF token.
    with buyer.expect_request(re.compile(r"/status$")) as following:
        buyer.goto(f"{order_url}?paid=1")
    token = buyer.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    assert following.value.headers.get("x-csrf-token") == token
    buyer.goto(order_url)

    buyer.get_by_label("Visa test card that succeeds").check()
    buyer.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(buyer.get_by_text("Order complete.")).to_be_visible()


def test_an_unpaid_order_expires_on_the_page_without_a_reload(site: Site) -> None:
    buyer = ordered(site, "Ballet", "15.00")
    mark(buyer)
    expect(buyer.get_by_text("Time left to pay")).to_be_visible()
    expect(buyer.get_by_text("Order expired.")).to_be_visible(timeout=(EXPIRY + 10) * 1000)
    expect(buyer.get_by_text("Your card was not charged.")).to_be_visible()
    expect(buyer.get_by_role("button", name=re.compile(r"^Pay "))).to_be_hidden()
    expect(buyer.locator("[data-status-badge]")).to_have_text("Expired")
    assert unreloaded(buyer)
    check(buyer, "order-expired")

    buyer.goto("/orders")
    expect(buyer.get_by_role("listitem").first).to_be_visible()
    check(buyer, "orders-expired")


# --- sessions, forms, errors ----------------------------------------------------------------------


def test_signing_out_hides_the_private_links(site: Site) -> None:
    page = site.person()
    sign_up(page)
    page.goto("/auth/signout")
    expect(page.get_by_role("heading", name="Sign out")).to_be_visible()
    check(page, "signout")
    page.get_by_role("main").get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(nav(page).get_by_role("link", name="Sign in")).to_be_visible()
    for private in ("Sell tickets", "My orders"):
        expect(nav(page).get_by_role("link", name=private)).to_have_count(0)
    expect(nav(page).get_by_role("button", name="Sign out")).to_have_count(0)
    check(page, "home-signed-out")

    page.goto("/orders")  # private: asks to sign in, then comes back
    page.wait_for_url(re.compile(r"/auth/signin\?next=/orders$"))
    check(page, "signin")


def test_validation_errors_appear_next_to_their_fields(site: Site) -> None:
    page = site.person()
    page.goto("/auth/signup")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#email-error")).to_have_text("Email must be valid")
    expect(page.get_by_label("Email")).to_have_value("not-an-email")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Email").fill(f"user-{uuid.uuid4().hex[:10]}@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#password-error")).to_have_text(
        "Password must be between 8 and 128 characters"
    )
    check(page, "signup-errors")

    email = sign_up(page)
    nav(page).get_by_role("button", name="Sign out").click()
    page.goto("/auth/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid credentials")
    expect(page.get_by_label("Email")).to_have_value(email)
    check(page, "signin-errors")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav(page).get_by_role("link", name="Sell tickets").click()
    page.get_by_label("Title").fill("")
    page.get_by_label("Price (USD)").fill("12.345")
    page.get_by_role("button", name="Sell ticket").click()
    expect(page.locator("#price-error")).to_have_text(
        "Price must be in dollars and cents, like 19.99"
    )
    page.get_by_label("Price (USD)").fill("0")
    page.get_by_role("button", name="Sell ticket").click()
    expect(page.locator("#title-error")).to_have_text("Title is required")
    expect(page.locator("#price-error")).to_have_text("Price must be greater than 0")
    check(page, "sell-errors")

    ticket_id = sell(page, "Edited later", "10")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Price (USD)")).to_have_value("10.00")
    page.get_by_label("Title").fill("Edited now")
    page.get_by_label("Price (USD)").fill("11.5")
    check(page, "ticket-edit")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(f"/tickets/{ticket_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Edited now")
    expect(page.get_by_text("$11.50")).to_be_visible()


def test_unknown_pages_are_a_friendly_404(site: Site) -> None:
    page = site.person()
    for path in ("/no/such/page", "/tickets/000000000000000000000000", "/tickets/nope"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    check(page, "not-found")


def test_a_restarting_service_is_a_friendly_page(site: Site, stack: Stack) -> None:
    page = site.person()
    stack.kill("tickets")
    try:
        response = page.goto("/")
        assert response is not None
        assert response.status == 503
        expect(page.get_by_role("heading", name="The service is restarting")).to_be_visible()
        check(page, "restarting")
    finally:
        stack.restart("tickets")
    # No click, no goto (which would race the page's own reload): the page comes back by itself.
    expect(page.get_by_role("heading", name="Tickets for sale")).to_be_visible(timeout=30_000)


def test_a_phone_sized_screen(site: Site) -> None:
    page = site.person(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_up(page)
    ticket_id = sell(page, f"Phone gig {uuid.uuid4().hex[:6]}", "9.99")
    for name, path in (
        ("phone-home", "/"),
        ("phone-ticket", f"/tickets/{ticket_id}"),
        ("phone-sell", "/tickets/new"),
        ("phone-orders", "/orders"),
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} scrolls sideways: {width}px"
        expect(nav(page).get_by_role("link", name="My orders")).to_be_visible()
        check(page, name)


def test_a_form_posted_from_elsewhere_is_refused_and_nothing_is_written(site: Site) -> None:
    page = site.person()
    sign_up(page)
    title = f"Forged {uuid.uuid4().hex[:8]}"
    # What a page elsewhere (a sibling site, say, whose posts carry this site's cookies) can
    # make the browser send: the form, the cookies, but not the token of a page of this site.
    with page.expect_navigation() as posted:
        page.evaluate(
            """title => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/tickets/new";
                for (const [name, value] of [["title", title], ["price", "5"]]) {
                    const input = document.createElement("input");
                    input.type = "hidden";
                    input.name = name;
                    input.value = value;
                    form.append(input);
                }
                document.body.append(form);
                form.submit();
            }""",
            title,
        )
    response = posted.value
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    expect(page.get_by_text("Nothing was changed.")).to_be_visible()
    check(page, "forbidden")
    listed = page.request.get("/api/tickets?limit=200").json()
    assert title not in {ticket["title"] for ticket in listed}
    # The same person's own form still works.
    page.get_by_role("link", name="Back to tickets").click()
    sell(page, title, "5")


@contextlib.contextmanager
def client_alone(
    handler: Callable[[httpx.Request], httpx.Response], **settings: Any
) -> Iterator[str]:
    """The web client on its own, in a thread, in front of a fake API (`handler`): its URL."""
    app = create_app(
        Settings(
            environment="test",
            client_csrf_key="browser-csrf-key-0123456789abcdef0123",
            client_auth_url="http://api.invalid",
            client_tickets_url="http://api.invalid",
            client_orders_url="http://api.invalid",
            client_payments_url="http://api.invalid",
            cookie_secure=False,
            client_replica_wait_seconds=0,
            **settings,
        ),
        transport=httpx.MockTransport(handler),
    )
    with serving_in_thread(app, name="client-alone") as url:
        yield url


def garbage_api(request: httpx.Request) -> httpx.Response:
    """An API that fails in ways the client does not expect."""
    if request.url.path == "/api/tickets":
        raise RuntimeError("secret internals: the ticket store is on fire")
    return httpx.Response(200, content=b"<html>not json</html>", headers={"content-type": "x"})


def test_an_unexpected_failure_is_a_friendly_error_page(site: Site) -> None:
    with client_alone(garbage_api) as url:
        page = site.person(base_url=url)
        response = page.goto("/")
    assert response is not None
    assert response.status == 500
    expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
    expect(page.get_by_role("link", name="Back to tickets")).to_be_visible()
    text = page.content()
    for leak in ("Traceback", "secret internals", "RuntimeError", 'File "'):
        assert leak not in text
    check(page, "error")


# --- Stripe Elements (js.stripe.com cannot be reached here: the browser gets a stand-in) ----------

BUYER = {"id": "a" * 24, "email": "buyer@example.com"}
OPEN_ORDER = {
    "id": "2" * 24,
    "status": "created",
    "userId": BUYER["id"],
    "expiresAt": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
    "ticket": {"id": "1" * 24, "title": "Elements night", "price": 25},
}
# Stripe.js as far as app.js uses it: the first card is incomplete, the second makes a token.
STRIPE_STAND_IN = """
window.Stripe = function (key) {
  window.stripeKey = key;
  var attempts = 0;
  return {
    elements: function () {
      return { create: function () {
        return {
          mount: function (el) { el.textContent = "4242 4242 4242 4242"; },
          on: function () {}
        };
      } };
    },
    createToken: function () {
      attempts += 1;
      return Promise.resolve(attempts === 1
        ? { error: { message: "Your card number is incomplete." } }
        : { token: { id: "tok_from_elements" } });
    }
  };
};
"""


class PaymentsApi:
    """The API a buyer with one open order sees; remembers the payments asked for."""

    def __init__(self) -> None:
        self.payments: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/users/currentuser":
            signed_in = "session=buyer" in request.headers.get("cookie", "")
            return httpx.Response(200, json={"currentUser": BUYER if signed_in else None})
        if path == f"/api/orders/{OPEN_ORDER['id']}":
            return httpx.Response(200, json=OPEN_ORDER)
        if path == "/api/payments" and request.method == "POST":
            self.payments.append(json.loads(request.content))
            return httpx.Response(201, json={"id": "9" * 24})
        return httpx.Response(404, json={"errors": [{"message": "Not Found"}]})


def buyer_on(site: Site, url: str) -> Page:
    page = site.person(base_url=url)
    page.context.add_cookies([{"name": "session", "value": "buyer", "url": url}])
    return page


def test_stripe_elements_posts_its_token_and_shows_stripes_errors(site: Site) -> None:
    api = PaymentsApi()
    with client_alone(api, stripe_publishable_key="pk_test_browser") as url:
        page = buyer_on(site, url)
        page.route(
            "https://js.stripe.com/**",
            lambda route: route.fulfill(body=STRIPE_STAND_IN, content_type="text/javascript"),
        )
        page.goto(f"/orders/{OPEN_ORDER['id']}")
        expect(page.locator("#card-element")).to_have_text("4242 4242 4242 4242")
        assert page.evaluate("window.stripeKey") == "pk_test_browser"
        expect(page.get_by_text("Test mode")).to_have_count(0)
        pay = page.get_by_role("button", name="Pay $25.00")
        pay.click()
        expect(page.locator("#card-errors")).to_have_text("Your card number is incomplete.")
        expect(pay).to_be_enabled()
        assert api.payments == []
        check(page, "order-elements")

        pay.click()
        page.wait_for_url(re.compile(r"\?paid=1$"))
        assert api.payments == [{"token": "tok_from_elements", "orderId": OPEN_ORDER["id"]}]


def test_stripe_elements_that_cannot_load_says_so(site: Site) -> None:
    api = PaymentsApi()
    with client_alone(api, stripe_publishable_key="pk_test_browser") as url:
        page = buyer_on(site, url)
        page.route("https://js.stripe.com/**", lambda route: route.abort())
        page.goto(f"/orders/{OPEN_ORDER['id']}")
        expect(page.locator("#card-errors")).to_have_text(
            "The card form could not load. Check your connection and reload the page."
        )
        expect(page.get_by_role("button", name="Pay $25.00")).to_be_disabled()
        check(page, "order-elements-unavailable")
    assert api.payments == []
