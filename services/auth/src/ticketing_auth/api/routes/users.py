"""/api/users: sign up, sign in, sign out, current user.

Refusals are raised as they are decided, already the shared kinds (`ticketing_auth.errors`), and
rendered by the one error handler.
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response, status

from ticketing_auth import accounts
from ticketing_auth.deps import ClientAddress, RuntimeDep
from ticketing_auth.repository import UserDoc
from ticketing_auth.runtime import AuthRuntime
from ticketing_auth.schemas import CurrentUserResponse, UserCreate, UserPublic, UserSignin
from ticketing_common.auth import (
    clear_session_cookie,
    issue_token,
    optional_user,
    set_session_cookie,
)
from ticketing_common.errors import error_responses

router = APIRouter(prefix="/api/users", tags=["users"])


def _signed_in(user: UserDoc, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Set the session cookie for `user`; the user as the API shows it."""
    public = UserPublic.from_doc(user)
    token = issue_token(user_id=public.id, email=public.email, settings=runtime.settings)
    set_session_cookie(response, token, settings=runtime.settings)
    return public


async def _session(
    attempt: Awaitable[UserDoc], runtime: RuntimeDep, response: Response
) -> UserPublic:
    """The user `attempt` signs up or in, with their session cookie."""
    return _signed_in(await attempt, runtime, response)


@router.post("/signup", status_code=status.HTTP_201_CREATED, responses=error_responses(429))
async def signup(
    body: UserCreate, runtime: RuntimeDep, response: Response, address: ClientAddress
) -> UserPublic:
    """Create an account and sign in."""
    offered = accounts.Credentials(body.email, body.password, address)
    attempt = accounts.sign_up(runtime.outbox, runtime.passwords, runtime.throttle, offered)
    return await _session(attempt, runtime, response)


@router.post("/signin", responses=error_responses(429))
async def signin(
    body: UserSignin, runtime: RuntimeDep, response: Response, address: ClientAddress
) -> UserPublic:
    """Sign in with email and password."""
    offered = accounts.Credentials(body.email, body.password, address)
    return await _session(
        accounts.sign_in(runtime.db, runtime.passwords, runtime.throttle, offered),
        runtime,
        response,
    )


@router.post("/signout")
async def signout(runtime: RuntimeDep, response: Response) -> dict[str, object]:
    """Sign out: clear the session cookie."""
    clear_session_cookie(response, settings=runtime.settings)
    return {}


@router.get(
    "/currentuser",
    response_model=None,
    responses={200: {"model": CurrentUserResponse, "description": "Who is signed in"}},
)
async def current_user(request: Request) -> Response:
    """Who is signed in, or null (also for a valid session whose account no longer exists,
    whose cookie is then cleared)."""
    # Served as a direct route (main.py): the request only, the answer rendered here.
    runtime: AuthRuntime = request.app.state.runtime
    session = await optional_user(request)
    user = await accounts.signed_in_user(runtime.db, session)
    body = CurrentUserResponse(currentUser=UserPublic.from_doc(user) if user else None)
    response = Response(body.model_dump_json(), media_type="application/json")
    if user is None and session is not None:
        clear_session_cookie(response, settings=runtime.settings)
    return response
