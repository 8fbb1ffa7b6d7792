"""/api/users: sign up, sign in, sign out, current user."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pymongo.errors import DuplicateKeyError

from ticketing_auth import passwords, repository
from ticketing_auth.deps import OptionalUser, RuntimeDep
from ticketing_auth.schemas import CurrentUserResponse, UserCreate, UserPublic, UserSignin
from ticketing_common.auth import clear_session_cookie, issue_token, set_session_cookie
from ticketing_common.errors import BadRequestError

router = APIRouter(prefix="/api/users", tags=["users"])


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: UserCreate, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Create an account and sign in."""
    password_hash = await passwords.hash_password(body.password)
    try:
        user = await repository.create_user(
            runtime.outbox, email=body.email, password_hash=password_hash
        )
    except DuplicateKeyError:
        # The unique index decides: of two concurrent sign-ups of one email exactly one wins.
        raise BadRequestError("Email in use") from None
    public = UserPublic.from_doc(user)
    token = issue_token(user_id=public.id, email=public.email, settings=runtime.settings)
    set_session_cookie(response, token, settings=runtime.settings)
    return public


@router.post("/signin")
async def signin(body: UserSignin, runtime: RuntimeDep, response: Response) -> UserPublic:
    """Sign in with email and password."""
    user = await repository.get_user_by_email(runtime.db, email=body.email)
    ok = await passwords.verify_password(body.password, repository.password_hash_of(user))
    if user is None or not ok:
        raise BadRequestError("Invalid credentials")
    public = UserPublic.from_doc(user)
    token = issue_token(user_id=public.id, email=public.email, settings=runtime.settings)
    set_session_cookie(response, token, settings=runtime.settings)
    return public


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
