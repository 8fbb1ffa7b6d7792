"""Tickets: the ones for sale (the home page), one ticket's page, selling and editing one,
and buying it (which makes an order)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from ticketing_client.pages.error_pages import error_page, not_found
from ticketing_client.pages.rendering import form_page, form_text, redirect, rejected, render
from ticketing_client.pages.session import (
    SignedIn,
    User,
    api_of,
    cookie_of,
    current_user,
    settings_of,
)
from ticketing_client.views import OBJECT_ID, Cursor, normalise_price

router = APIRouter()

TICKET_FIELDS = ("title", "price")


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


# Before `/tickets/{ticket_id}`, which would take "new" for an id.
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
