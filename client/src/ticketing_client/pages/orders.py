"""Orders: the list of mine, one order's page (paying for it: `payments`), its status for
the page to poll, and cancelling it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ticketing_client.pages.error_pages import error_page
from ticketing_client.pages.rendering import redirect, render, to_signin
from ticketing_client.pages.session import SignedIn, User, api_of, cookie_of, settings_of
from ticketing_client.views import OBJECT_ID, order_view

router = APIRouter()

STRIPE_JS = "https://js.stripe.com/v3/"


async def order_of(request: Request, order_id: str) -> dict[str, Any] | None:
    """The order as its buyer sees it (this browser's cookie), or None."""
    if not OBJECT_ID.fullmatch(order_id):
        return None
    result = await api_of(request).call("GET", f"/api/orders/{order_id}", cookie=cookie_of(request))
    return result.body if result.ok and isinstance(result.body, dict) else None


async def order_or_404(request: Request, order_id: str) -> dict[str, Any]:
    """The order, or the 404 page."""
    order = await order_of(request, order_id)
    if order is None:
        raise HTTPException(404)
    return order


def render_order(
    request: Request,
    user: User,
    order: dict[str, Any],
    *,
    paid: bool = False,
    pay_error: str | None = None,
    token: str = "tok_visa",  # noqa: S107 - Stripe's public test card token
    status_code: int = 200,
) -> Response:
    """An order's page: its status, time left, and the form to pay (with `pay_error` shown)."""
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
    order = await order_or_404(request, order_id)
    return render_order(request, user, order, paid=request.query_params.get("paid") == "1")


@router.get("/orders/{order_id}/status")
async def order_status(request: Request, order_id: str) -> Response:
    """What the order page polls after paying (the browser asks the client, not the API)."""
    order = await order_of(request, order_id)
    if order is None:
        return JSONResponse({"errors": [{"message": "Not Found"}]}, status_code=404)
    view = order_view(order)
    return JSONResponse(
        {"status": view.status, "expiresAt": order.get("expiresAt"), "label": view.badge[0]},
        headers={"cache-control": "no-store"},
    )


@router.post("/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: str, user: SignedIn) -> Response:
    result = await api_of(request).call(
        "DELETE", f"/api/orders/{order_id}", cookie=cookie_of(request)
    )
    if result.status == 404:
        raise HTTPException(404)
    if not result.ok:
        order = await order_or_404(request, order_id)
        return render_order(request, user, order, pay_error=result.message, status_code=400)
    return redirect(f"/orders/{order_id}")
