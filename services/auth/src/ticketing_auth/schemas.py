"""Request and response bodies of /api/users."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator

from ticketing_auth.repository import UserDoc
from ticketing_common.validation import EmailField, RequestBody, text_check

PASSWORD_MESSAGE = "Password must be between 8 and 128 characters"  # noqa: S105 - a message

# Passwords are taken as typed: no stripping, so " secret " and "secret" are different.
NewPassword = Annotated[
    str,
    BeforeValidator(
        text_check(PASSWORD_MESSAGE, min_len=8, max_len=128, strip=False, allow_control=True)
    ),
]
GivenPassword = Annotated[
    str,
    BeforeValidator(
        text_check(
            "You must supply a password", min_len=1, max_len=1024, strip=False, allow_control=True
        )
    ),
]


class UserCreate(RequestBody):
    email: EmailField
    password: NewPassword


class UserSignin(RequestBody):
    email: EmailField
    password: GivenPassword


class UserPublic(BaseModel):
    id: str
    email: str

    @classmethod
    def from_doc(cls, doc: UserDoc) -> UserPublic:
        return cls(id=str(doc["_id"]), email=doc["email"])


class CurrentUserResponse(BaseModel):
    currentUser: UserPublic | None
