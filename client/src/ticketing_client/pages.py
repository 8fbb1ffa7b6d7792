"""The pages. Each GET renders with the signed-in user's data; each form POSTs here, the client
calls the API with the browser's own cookie and redirects (303), passing Set-Cookie back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ticketing_client.api import Api, ApiResult, ApiUnavailableError
from ticketing_client.csrf import csrf_of, require_csrf
from ticketing_client.settings import Settings
from ticketing_client.views import (
    OBJECT_ID,
    Cursor,
    clock,
    money,
    normalise_price,
    order_view,
    safe_next,
)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["money"] = money
templates.env.filters["clock"] = clock

# Every state-changing request is refused before its handler runs (so before any API call)
# unless it carries this browser's CSRF token: see csrf.py.
router = APIRouter(dependencies=[Depends(require_csrf)])

User = dict[str, Any]
AUTH_MODES = {"signup": "Sign up", "signin": "Sign in"}
AUTH_FIELDS = ("email", "password")
TICKET_FIELDS = ("title", "price")
STRIPE_JS = "https://js.stripe.com/v3/"
# A form that posts to one of these acts on the page before it: after signing in, back there.
ACTIONS = ("/purchase", "/pay", "/cancel")


# --- helpers --------------------------------------------------------------------------------------


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def cookie_of(request: Request) -> str | None:
    return request.headers.get("cookie")


async def current_user(request: Request) -> User | None:
    """The signed-in user, asked of auth with this browser's cookie (no cookie: nobody)."""
    cookie = cookie_of(request)
    if not cookie:
        return None
    result = await api_of(request).call("GET", "/api/users/currentuser", cookie=cookie)
    user = result.body.get("currentUser") if isinstance(result.body, dict) else None
    return user if isinstance(user, dict) else None


class SignInRequiredError(Exception):
    """A private page asked for by nobody: main.py answers with `to_signin`."""


async def signed_in(request: Request) -> User:
    user = await current_user(request)
    if user is None:
        raise SignInRequiredError
    return user


SignedIn = Annotated[User, Depends(signed_in)]


def content_security_policy(settings: Settings) -> str:
    """Only this site's own scripts, styles and frames; Stripe's too when Elements is on."""
    stripe = bool(settings.stripe_publishable_key)
    script = "'self' https://js.stripe.com https://*.js.stripe.com" if stripe else "'self'"
    frame = (
        "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
        if stripe
        else "'none'"
    )
    connect = "'self' https://api.stripe.com" if stripe else "'self'"
    return (
        f"default-src 'self'; script-src {script}; frame-src {frame}; connect-src {connect}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def render(
    request: Request,
    name: str,
    user: User | None,
    status_code: int = 200,
    *,
    show_nav: bool = True,
    **context: Any,
) -> Response:
    csrf = csrf_of(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"user": user, "show_nav": show_nav, "csrf_token": csrf.token(request), **context},
        status_code=status_code,
    )
    csrf.set_cookie(request, response)
    response.headers["content-security-policy"] = request.app.state.content_security_policy
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    return response


def with_cookies(response: Response, result: ApiResult) -> Response:
    """The API's Set-Cookie headers, unchanged, on the browser's response."""
    for value in result.set_cookies:
        response.headers.append("set-cookie", value)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def to_signin(request: Request) -> RedirectResponse:
    """To the sign-in page, then back: to this page, or for a form's action, to its page."""
    path = request.url.path
    if request.method != "GET":
        path = next((path.removesuffix(a) for a in ACTIONS if path.endswith(a)), path)
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/auth/signin?next={quote(target, safe='/')}")


async def form_text(request: Request, *names: str) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for name in names:
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


def form_page(
    request: Request,
    name: str,
    user: User | None,
    *,
    errors: dict[str, str] | None = None,
    form_errors: list[str] | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """A page with a form: the API's messages by field, and the rest above the form."""
    return render(
        request,
        name,
        user,
        status_code,
        errors=errors or {},
        form_errors=form_errors or [],
        **context,
    )


def rejected(result: ApiResult, fields: tuple[str, ...]) -> dict[str, Any]:
    """What a form page shows when the API refused its submission."""
    errors, rest = result.field_errors(fields)
    # Too many attempts keeps its status (and the API's message says how long to wait).
    status_code = result.status if result.status == 429 else 400 if result.status < 500 else 500
    return {"errors": errors, "form_errors": rest, "status_code": status_code}


async def not_found(request: Request) -> Response:
    try:
        user = await current_user(request)
    except ApiUnavailableError:
        user = None
    return render(request, "not_found.html", user, 404, title="Page not found")


def error_page(request: Request, status_code: int) -> Response:
    return render(
        request, "error.html", None, status_code, show_nav=False, title="Something went wrong"
    )


def forbidden_page(request: Request) -> Response:
    """A form sent without this browser's CSRF token (csrf.py): no API call was made."""
    return render(
        request, "forbidden.html", None, 403, show_nav=False, title="This form has expired"
    )


def unavailable_page(request: Request) -> Response:
    response = render(
        request, "unavailable.html", None, 503, show_nav=False, title="Back in a moment"
    )
    response.headers["retry-after"] = "5"
    return response


# --- tickets for sale -----------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, before: str | None = None, trail: str | None = None) -> Response:
    cursor = Cursor.parse(before, trail)
    if cursor is None:
        return await not_found(request)
    user = await current_user(request)
    size = settings_of(request).client_page_size
    params = {"limit": str(size + 1)}
    if cursor.before:
        params["before"] = cursor.before
    result = await api_of(request).call("GET", "/api/tickets", cookie=None, params=params)
    if not result.ok or not isinstance(result.body, list):
        return await not_found(request) if result.status == 400 else error_page(request, 500)
    tickets = result.body[:size]
    more = len(result.body) > size
    return render(
        request,
        "index.html",
        user,
        title="Tickets for sale",
        tickets=tickets,
        next_href=cursor.next_href(tickets[-1]["id"]) if more and tickets else None,
        previous_href=cursor.previous_href(),
    )


# --- auth -----------------------------------------------------------------------------------------


@router.get("/auth/signout")
async def signout_page(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return redirect("/")
    return render(request, "signout.html", user, title="Sign out")


@router.post("/auth/signout")
async def signout(request: Request) -> Response:
    result = await api_of(request).call(
        "POST", "/api/users/signout", cookie=cookie_of(request), body={}
    )
    return with_cookies(redirect("/"), result)


def _auth_form(request: Request, mode: str, *, email: str = "", **context: Any) -> Response:
    """The sign-up or sign-in page (`next_url` and the messages in `context`)."""
    return form_page(
        request, "auth.html", None, title=AUTH_MODES[mode], mode=mode, email=email, **context
    )


@router.get("/auth/{mode}")
async def auth_page(request: Request, mode: str) -> Response:
    if mode not in AUTH_MODES:
        raise HTTPException(404)
    next_url = safe_next(request.query_params.get("next"))
    if await current_user(request):
        return redirect(next_url)
    return _auth_form(request, mode, next_url=next_url)


@router.post("/auth/{mode}")
async def authenticate(request: Request, mode: str) -> Response:
    if mode not in AUTH_MODES:
        raise HTTPException(404)
    data = await form_text(request, "email", "password", "next")
    next_url = safe_next(data["next"])
    result = await api_of(request).call(
        "POST",
        f"/api/users/{mode}",
        cookie=cookie_of(request),
        body={"email": data["email"].strip(), "password": data["password"]},
    )
    if result.ok:
        return with_cookies(redirect(next_url), result)
    return _auth_form(
        request, mode, email=data["email"], next_url=next_url, **rejected(result, AUTH_FIELDS)
    )


# --- selling --------------------------------------------------------------------------------------


def _ticket_form(
    request: Request,
    user: User,
    ticket: dict[str, Any] | None,
    *,
    title: str = "",
    price: str = "",
    **messages: Any,
) -> Response:
    return form_page(
        request,
        "ticket_form.html",
        user,
        title="Edit ticket" if ticket else "Sell a ticket",
        ticket=ticket,
        form_title=title,
        form_price=price,
        **messages,
    )


async def _save_ticket(
    request: Request, user: User, method: str, path: str, ticket: dict[str, Any] | None
) -> Response:
    data = await form_text(request, "title", "price")
    price, price_error = normalise_price(data["price"])
    if price is None:
        return _ticket_form(
            request,
            user,
            ticket,
            title=data["title"],
            price=data["price"],
            errors={"price": price_error or "Price is required"},
            status_code=400,
        )
    # The price goes as the exact decimal text of a JSON number (never through a float).
    raw = f'{{"title": {json.dumps(data["title"])}, "price": {price}}}'
    result = await api_of(request).call(method, path, cookie=cookie_of(request), raw_json=raw)
    if result.ok and isinstance(result.body, dict):
        return redirect(f"/tickets/{result.body['id']}")
    if result.status == 404:
        raise HTTPException(404)
    shown = rejected(result, TICKET_FIELDS)
    if result.status == 401 and not shown["form_errors"] and not shown["errors"]:
        shown["form_errors"] = ["Only the seller can edit this ticket."]
    return _ticket_form(request, user, ticket, title=data["title"], price=price, **shown)


@router.get("/tickets/new")
async def new_ticket_page(request: Request, user: SignedIn) -> Response:
    return _ticket_form(request, user, None)


@router.post("/tickets/new")
async def new_ticket(request: Request, user: SignedIn) -> Response:
    return await _save_ticket(request, user, "POST", "/api/tickets", None)


async def _ticket(request: Request, ticket_id: str) -> dict[str, Any]:
    """The ticket, or the 404 page."""
    if not OBJECT_ID.fullmatch(ticket_id):
        raise HTTPException(404)
    result = await api_of(request).call("GET", f"/api/tickets/{ticket_id}", cookie=None)
    if not result.ok or not isinstance(result.body, dict):
        raise HTTPException(404)
    return result.body


def _ticket_page(
    request: Request,
    user: User | None,
    ticket: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "ticket.html",
        user,
        status_code,
        title=ticket.get("title", "Ticket"),
        ticket=ticket,
        is_owner=bool(user and user.get("id") == ticket.get("userId")),
        reserved=bool(ticket.get("orderId")),
        error=error,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(request: Request, ticket_id: str) -> Response:
    ticket = await _ticket(request, ticket_id)
    return _ticket_page(request, await current_user(request), ticket)


@router.get("/tickets/{ticket_id}/edit")
async def edit_ticket_page(request: Request, ticket_id: str, user: SignedIn) -> Response:
    ticket = await _ticket(request, ticket_id)
    if ticket.get("userId") != user.get("id"):
        raise HTTPException(404)
    if ticket.get("orderId"):
        return _ticket_page(
            request, user, ticket, error="Cannot edit a reserved ticket", status_code=400
        )
    return _ticket_form(
        request, user, ticket, title=ticket["title"], price=f"{ticket['price']:.2f}"
    )


@router.post("/tickets/{ticket_id}/edit")
async def edit_ticket(request: Request, ticket_id: str, user: SignedIn) -> Response:
    ticket = await _ticket(request, ticket_id)
    return await _save_ticket(request, user, "PUT", f"/api/tickets/{ticket_id}", ticket)


@router.post("/tickets/{ticket_id}/purchase")
async def purchase(request: Request, ticket_id: str, user: SignedIn) -> Response:
    ticket = await _ticket(request, ticket_id)
    result = await api_of(request).call_until_known(
        "POST", "/api/orders", cookie=cookie_of(request), body={"ticketId": ticket_id}
    )
    if result.ok and isinstance(result.body, dict):
        return redirect(f"/orders/{result.body['id']}")
    return _ticket_page(request, user, ticket, error=result.message, status_code=400)


# --- buying ---------------------------------------------------------------------------------------


async def _order(request: Request, order_id: str) -> dict[str, Any] | None:
    if not OBJECT_ID.fullmatch(order_id):
        return None
    result = await api_of(request).call("GET", f"/api/orders/{order_id}", cookie=cookie_of(request))
    return result.body if result.ok and isinstance(result.body, dict) else None


async def _order_or_404(request: Request, order_id: str) -> dict[str, Any]:
    order = await _order(request, order_id)
    if order is None:
        raise HTTPException(404)
    return order


def _order_page(
    request: Request,
    user: User,
    order: dict[str, Any],
    *,
    paid: bool = False,
    pay_error: str | None = None,
    token: str = "tok_visa",  # noqa: S107 - Stripe's public test card token
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "order.html",
        user,
        status_code,
        title=f"Order: {order.get('ticket', {}).get('title', '')}",
        order=order,
        view=order_view(order),
        paid=paid,
        pay_error=pay_error,
        token=token,
        stripe_key=settings_of(request).stripe_publishable_key,
        stripe_js=STRIPE_JS,
    )


@router.get("/orders")
async def orders_page(request: Request, user: SignedIn) -> Response:
    result = await api_of(request).call("GET", "/api/orders", cookie=cookie_of(request))
    if result.status == 401:
        return to_signin(request)
    if not result.ok or not isinstance(result.body, list):
        return error_page(request, 500)
    return render(
        request,
        "orders.html",
        user,
        title="My orders",
        orders=[order_view(o) for o in result.body if isinstance(o, dict)],
    )


@router.get("/orders/{order_id}")
async def order_page(request: Request, order_id: str, user: SignedIn) -> Response:
    order = await _order_or_404(request, order_id)
    return _order_page(request, user, order, paid=request.query_params.get("paid") == "1")


@router.get("/orders/{order_id}/status")
async def order_status(request: Request, order_id: str) -> Response:
    """What the order page polls after paying (the browser asks the client, not the API)."""
    order = await _order(request, order_id)
    if order is None:
        return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
    view = order_view(order)
    return JSONResponse(
        {"status": view.status, "expiresAt": order.get("expiresAt"), "label": view.badge[0]},
        headers={"cache-control": "no-store"},
    )


@router.post("/orders/{order_id}/pay")
async def pay(request: Request, order_id: str, user: SignedIn) -> Response:
    order = await _order_or_404(request, order_id)
    # A test card's token, or the one Stripe Elements made in the browser (app.js).
    token = (await form_text(request, "token"))["token"]
    if not token:
        missing = "Enter your card details" if settings_of(request).stripe_publishable_key else ""
        return _order_page(
            request,
            user,
            order,
            pay_error=missing or "Choose a card",
            token=token,
            status_code=400,
        )
    result = await api_of(request).call_until_known(
        "POST",
        "/api/payments",
        cookie=cookie_of(request),
        body={"token": token, "orderId": order_id},
    )
    if result.ok:
        return redirect(f"/orders/{order_id}?paid=1")
    fresh = await _order(request, order_id) or order
    return _order_page(request, user, fresh, pay_error=result.message, token=token, status_code=400)


@router.post("/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: str, user: SignedIn) -> Response:
    result = await api_of(request).call(
        "DELETE", f"/api/orders/{order_id}", cookie=cookie_of(request)
    )
    if result.status == 404:
        raise HTTPException(404)
    if not result.ok:
        order = await _order_or_404(request, order_id)
        return _order_page(request, user, order, pay_error=result.message, status_code=400)
    return redirect(f"/orders/{order_id}")
