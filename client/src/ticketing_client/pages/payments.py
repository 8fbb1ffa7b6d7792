"""Paying for an order: a test card's token, or the one Stripe Elements made in the browser."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ticketing_client.pages.orders import order_of, order_or_404, render_order
from ticketing_client.pages.rendering import form_text, redirect
from ticketing_client.pages.session import SignedIn, api_of, cookie_of, settings_of

router = APIRouter()


@router.post("/orders/{order_id}/pay")
async def pay(request: Request, order_id: str, user: SignedIn) -> Response:
    order = await order_or_404(request, order_id)
    # A test card's token, or the one Stripe Elements made in the browser (app.js).
    token = (await form_text(request, "token"))["token"]
    if not token:
        missing = "Enter your card details" if settings_of(request).stripe_publishable_key else ""
        return render_order(
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
    fresh = await order_of(request, order_id) or order
    return render_order(
        request, user, fresh, pay_error=result.message, token=token, status_code=400
    )
