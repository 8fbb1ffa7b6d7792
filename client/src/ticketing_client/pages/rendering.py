"""How a page is answered: its template with the headers every page carries, a form page with
the API's messages, a redirect (to signing in, or after a form) with the API's cookies."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ticketing_client.api import ApiResult
from ticketing_client.csrf import csrf_of
from ticketing_client.pages.session import User
from ticketing_client.settings import Settings
from ticketing_client.views import clock, money

templates = Jinja2Templates(directory=Path(__file__).parents[1] / "templates")
templates.env.filters["money"] = money
templates.env.filters["clock"] = clock

# A form that posts to one of these acts on the page before it: after signing in, back there.
ACTIONS = ("/purchase", "/pay", "/cancel")


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
