"""The pages, a router per area: `tickets` (the home page's tickets for sale, selling, buying),
`account` (signing up, in and out), `orders`, `payments`. Each GET renders with the signed-in
user's data; each form POSTs here, the client calls the API with the browser's own cookie and
redirects (303), passing Set-Cookie back. How a page is answered is `rendering`, who asks is
`session`, and the pages for failures are `error_pages`."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ticketing_client.csrf import require_csrf
from ticketing_client.pages import account, orders, payments, tickets

__all__ = ["router"]

# Every state-changing request is refused before its handler runs (so before any API call)
# unless it carries this browser's CSRF token: see csrf.py.
router = APIRouter(dependencies=[Depends(require_csrf)])
for area in (tickets, account, orders, payments):
    router.include_router(area.router)
