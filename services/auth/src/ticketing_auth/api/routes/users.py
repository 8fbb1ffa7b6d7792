"""/api/users: sign up, sign in, sign out, current user."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ticketing_auth import accounts
from ticketing_auth.deps import OptionalUser, RuntimeDep
from ticketing_auth.repository import UserDoc
from ticketing_auth.schemas import CurrentUserResponse, UserCreate, UserPublic, UserSignin
from ticketing_common.auth import clear_session_cookie, issue_token, set_session_cookie
from ticketing_common.errors import BadRequestError

router = APIRouter(prefix="/api/users", tags=["users"])


def _signed_in(user: UserDoc, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Set the session cookie for `user`; the user as the API shows it."""
    public = UserPublic.from_doc(user)
    token = issue_token(user_id=public.id, email=public.email, settings=runtime.settings)
    set_session_cookie(response, token, settings=runtime.settings)
    return public


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: UserCreate, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Create an account and sign in."""
    try:
        user = await accounts.sign_up(
            runtime.outbox, runtime.passwords, email=body.email, password=body.password
        )
    except accounts.EmailInUseError:
        raise BadRequestError("Email in use") from None
    return _signed_in(user, runtime, response)


@router.post("/signin")
async def signin(body: UserSignin, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Sign in with email and password."""
    try:
        user = await accounts.sign_in(
            runtime.db, runtime.passwords, email=body.email, password=body.password
        )
    except accounts.InvalidCredentialsError:
        raise BadRequestError("Invalid credentials") from None
    return _signed_in(user, runtime, response)


@router.post("/signout")
async def signout(runtime: RuntimeDep, response: Response) -> dict[str, object]:
    """Sign out: clear the session cookie."""
    clear_session_cookie(response, settings=runtime.settings)
    return {}


@router.get("/currentuser")
async def current_user(user: OptionalUser) -> CurrentUserResponse:
    """Who is signed in, or null."""
    if user is None:
        return CurrentUserResponse(currentUser=None)
    return CurrentUserResponse(currentUser=UserPublic(id=user.id, email=user.email))
