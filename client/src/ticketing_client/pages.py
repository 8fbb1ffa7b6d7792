"""The pages. Each GET renders with the signed-in user's data; each form POSTs here, the client
calls the API with the browser's own cookie and redirects (303), passing Set-Cookie back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ticketing_client.api import Api, ApiResult, ApiUnavailableError
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

router = APIRouter()

User = dict[str, Any]
AUTH_FIELDS = ("email", "password")
TICKET_FIELDS = ("title", "price")


# --- helpers --------------------------------------------------------------------------------------


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


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


def render(
    request: Request,
    name: str,
    user: User | None,
    status_code: int = 200,
    *,
    show_nav: bool = True,
    **context: Any,
) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {"user": user, "show_nav": show_nav, **context},
        status_code=status_code,
    )


def with_cookies(response: Response, result: ApiResult) -> Response:
    """The API's Set-Cookie headers, unchanged, on the browser's response."""
    for value in result.set_cookies:
        response.headers.append("set-cookie", value)
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def to_signin(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/auth/signin?next={quote(target, safe='/')}")


async def form_text(request: Request, *names: str) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for name in names:
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


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
    size = request.app.state.settings.client_page_size
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


def _auth_form(
    request: Request,
    user: User | None,
    mode: str,
    *,
    email: str = "",
    errors: dict[str, str] | None = None,
    form_errors: list[str] | None = None,
    next_url: str = "/",
    status_code: int = 200,
) -> Response:
    title = "Sign up" if mode == "signup" else "Sign in"
    return render(
        request,
        "auth.html",
        user,
        status_code,
        title=title,
        mode=mode,
        email=email,
        errors=errors or {},
        form_errors=form_errors or [],
        next_url=next_url,
    )


async def _auth_get(request: Request, mode: str) -> Response:
    user = await current_user(request)
    next_url = safe_next(request.query_params.get("next"))
    if user:
        return redirect(next_url)
    return _auth_form(request, None, mode, next_url=next_url)


async def _auth_post(request: Request, mode: str) -> Response:
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
    errors, rest = result.field_errors(AUTH_FIELDS)
    return _auth_form(
        request,
        None,
        mode,
        email=data["email"],
        errors=errors,
        form_errors=rest,
        next_url=next_url,
        # Too many attempts keeps its status (and the API's message says how long to wait).
        status_code=result.status if result.status == 429 else 400 if result.status < 500 else 500,
    )


@router.get("/auth/signup")
async def signup_page(request: Request) -> Response:
    return await _auth_get(request, "signup")


@router.post("/auth/signup")
async def signup(request: Request) -> Response:
    return await _auth_post(request, "signup")


@router.get("/auth/signin")
async def signin_page(request: Request) -> Response:
    return await _auth_get(request, "signin")


@router.post("/auth/signin")
async def signin(request: Request) -> Response:
    return await _auth_post(request, "signin")


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


# --- selling --------------------------------------------------------------------------------------


def _ticket_form(
    request: Request,
    user: User,
    *,
    ticket: dict[str, Any] | None,
    title: str = "",
    price: str = "",
    errors: dict[str, str] | None = None,
    form_errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "ticket_form.html",
        user,
        status_code,
        title="Edit ticket" if ticket else "Sell a ticket",
        ticket=ticket,
        form_title=title,
        form_price=price,
        errors=errors or {},
        form_errors=form_errors or [],
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
            ticket=ticket,
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
        return await not_found(request)
    errors, rest = result.field_errors(TICKET_FIELDS)
    if result.status == 401 and not rest and not errors:
        rest = ["Only the seller can edit this ticket."]
    return _ticket_form(
        request,
        user,
        ticket=ticket,
        title=data["title"],
        price=price,
        errors=errors,
        form_errors=rest,
        status_code=400 if result.status < 500 else 500,
    )


@router.get("/tickets/new")
async def new_ticket_page(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    return _ticket_form(request, user, ticket=None)


@router.post("/tickets/new")
async def new_ticket(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    return await _save_ticket(request, user, "POST", "/api/tickets", None)


async def _ticket(request: Request, ticket_id: str) -> dict[str, Any] | None:
    if not OBJECT_ID.fullmatch(ticket_id):
        return None
    result = await api_of(request).call("GET", f"/api/tickets/{ticket_id}", cookie=None)
    return result.body if result.ok and isinstance(result.body, dict) else None


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
    if ticket is None:
        return await not_found(request)
    return _ticket_page(request, await current_user(request), ticket)


@router.get("/tickets/{ticket_id}/edit")
async def edit_ticket_page(request: Request, ticket_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    ticket = await _ticket(request, ticket_id)
    if ticket is None:
        return await not_found(request)
    if ticket.get("userId") != user.get("id"):
        return await not_found(request)
    if ticket.get("orderId"):
        return _ticket_page(
            request, user, ticket, error="Cannot edit a reserved ticket", status_code=400
        )
    return _ticket_form(
        request, user, ticket=ticket, title=ticket["title"], price=f"{ticket['price']:.2f}"
    )


@router.post("/tickets/{ticket_id}/edit")
async def edit_ticket(request: Request, ticket_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    ticket = await _ticket(request, ticket_id)
    if ticket is None:
        return await not_found(request)
    return await _save_ticket(request, user, "PUT", f"/api/tickets/{ticket_id}", ticket)


@router.post("/tickets/{ticket_id}/purchase")
async def purchase(request: Request, ticket_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return redirect(f"/auth/signin?next=/tickets/{quote(ticket_id)}")
    ticket = await _ticket(request, ticket_id)
    if ticket is None:
        return await not_found(request)
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
    )


@router.get("/orders")
async def orders_page(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
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
async def order_page(request: Request, order_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    order = await _order(request, order_id)
    if order is None:
        return await not_found(request)
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


TEST_TOKENS = frozenset({"tok_visa", "tok_chargeDeclined"})


@router.post("/orders/{order_id}/pay")
async def pay(request: Request, order_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    order = await _order(request, order_id)
    if order is None:
        return await not_found(request)
    token = (await form_text(request, "token"))["token"]
    if not token:
        return _order_page(
            request, user, order, pay_error="Choose a card", token=token, status_code=400
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
async def cancel(request: Request, order_id: str) -> Response:
    user = await current_user(request)
    if user is None:
        return to_signin(request)
    result = await api_of(request).call(
        "DELETE", f"/api/orders/{order_id}", cookie=cookie_of(request)
    )
    if result.status == 404:
        return await not_found(request)
    if not result.ok:
        order = await _order(request, order_id)
        if order is None:
            return await not_found(request)
        return _order_page(request, user, order, pay_error=result.message, status_code=400)
    return redirect(f"/orders/{order_id}")
