"""The session (auth.py): a route that needs a user gets the token's subject, and refuses anyone
not signed in."""

import base64
import json
import time
import warnings

import httpx
import jwt
import pytest

from ticketing_common import auth
from ticketing_common.auth import issue_token, verify_token
from ticketing_common.settings import ServiceSettings
from ticketing_testing.apps import TEST_JWT_KEY


async def test_a_signed_in_user_is_the_tokens_subject(client: httpx.AsyncClient) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": 1})
    assert (res.status_code, res.json()["by"]) == (201, "u1")  # `client` is signed in as u1


async def test_not_signed_in_is_401(client: httpx.AsyncClient) -> None:
    client.cookies.clear()
    res = await client.post("/api/things", json={"title": "t", "price": 1})
    assert res.status_code == 401
    assert res.json() == {"errors": [{"message": "Not authorized"}]}


def _settings(key: str = TEST_JWT_KEY) -> ServiceSettings:
    return ServiceSettings(service_name="things", environment="test", jwt_key=key)


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings()
    token = issue_token(user_id="u1", email="a@b.co", settings=settings)
    claims = verify_token(token, settings=settings)
    assert claims is not None
    assert claims.id == "u1"
    assert verify_token(token, settings=settings) == claims  # from the cache
    later = time.time() + settings.jwt_ttl_seconds + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    assert verify_token(token, settings=settings) is None


def test_a_token_verified_under_one_key_is_not_accepted_under_another() -> None:
    token = issue_token(user_id="u1", email="a@b.co", settings=_settings())
    assert verify_token(token, settings=_settings()) is not None
    assert verify_token(token, settings=_settings("another-key-" + "x" * 32)) is None


@pytest.mark.parametrize(
    ("header", "claims"),
    [
        ({"alg": "none", "typ": "JWT"}, {"sub": "u1", "exp": 4_000_000_000}),
        ({"alg": "HS512", "typ": "JWT"}, {"sub": "u1", "exp": 4_000_000_000}),
        ({"alg": "HS256", "typ": "JWT"}, {"sub": "u1"}),  # no expiry
        ({"alg": "HS256", "typ": "JWT"}, {"sub": "u1", "exp": "never"}),
        ({"alg": "HS256", "typ": "JWT"}, {"exp": 4_000_000_000}),  # nobody
    ],
)
def test_tokens_that_are_not_ours_are_refused(
    header: dict[str, str], claims: dict[str, object]
) -> None:
    settings = _settings()
    algorithm = header["alg"]
    if algorithm == "none":
        signing_input = b".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
            for part in (header, claims)
        )
        token = (signing_input + b".").decode()
    else:
        with warnings.catch_warnings():  # our key is short for HS512: signed with it anyway
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            token = jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
    assert verify_token(token, settings=settings) is None
