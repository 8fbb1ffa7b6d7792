"""Sign-in and sign-up are rate-limited before any password is hashed: sign-in per client address,
per email at one address, and per email from everywhere by a growing wait that never keeps the
owner out (their known addresses skip it); sign-up per address and per email. The counts are in
Redis (shared by replicas), and in the process while Redis is down."""

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis import Redis

from ticketing_auth.main import create_app
from ticketing_auth.passwords import Passwords
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import KNOWN_PER_ACCOUNT, Throttle, _digest
from ticketing_testing.apps import TEST_JWT_KEY, assert_error_shape, only_error, running
from ticketing_testing.servers import ServerProcess, free_port, redis_process
from ticketing_testing.waiting import eventually

LIMITS: dict[str, Any] = {
    "rate_limit_signin_per_address": "3/minute",
    "rate_limit_signin_per_email_and_address": "2/minute",
    "rate_limit_signin_email_free_failures": 3,
    "rate_limit_signin_email_delay_seconds": 1.0,
    "rate_limit_signin_email_max_delay_seconds": 8.0,
    "rate_limit_signup_per_address": "2/minute",
    "rate_limit_signup_per_email": "2/minute",
}
CREDS = {"email": "victim@test.com", "password": "wrong-password"}
TOO_MANY = "Too many attempts, please try again in"


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_key=TEST_JWT_KEY, redis_url="memory://", **LIMITS)


@contextlib.asynccontextmanager
async def peer(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the (running) app connecting from `address`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 computation the service makes from now on (hash or verify)."""
    calls: list[str] = []
    real_hash, real_verify = Passwords.hash, Passwords.verify

    async def hash_password(self: Passwords, password: str) -> str:
        calls.append("hash")
        return await real_hash(self, password)

    async def verify_password(self: Passwords, password: str, password_hash: str | None) -> bool:
        calls.append("verify")
        return await real_verify(self, password, password_hash)

    monkeypatch.setattr(Passwords, "hash", hash_password)
    monkeypatch.setattr(Passwords, "verify", verify_password)
    return calls


def assert_too_many(res: httpx.Response) -> int:
    """A 429 in the error shape with a Retry-After (seconds) that says as much; the seconds."""
    assert res.status_code == 429, res.text
    assert_error_shape(res)
    retry_after = int(res.headers["retry-after"])
    assert 1 <= retry_after <= 60
    unit = "second" if retry_after == 1 else "seconds"
    assert only_error(res) == {"message": f"{TOO_MANY} {retry_after} {unit}"}
    return retry_after


async def signin(client: httpx.AsyncClient, **body: str) -> httpx.Response:
    return await client.post("/api/users/signin", json={**CREDS, **body})


async def test_signin_over_the_address_limit_is_429_and_hashes_nothing(
    client: httpx.AsyncClient, hashes: list[str]
) -> None:
    for n in range(3):
        res = await signin(client, email=f"user{n}@test.com")
        assert only_error(res) == {"message": "Invalid credentials"}
    assert hashes == ["verify"] * 3
    for n in range(3):
        assert_too_many(await signin(client, email=f"other{n}@test.com"))
    assert hashes == ["verify"] * 3  # refused before any Argon2 work


OWNER = {"email": "victim@test.com", "password": "the-right-password"}
OWNER_HOME = "203.0.113.1"


class Clock:
    """The throttle's clock (the waits per email), moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def clock_of(app: FastAPI) -> Clock:
    """The running app's throttle on a clock the test moves."""
    clock = Clock()
    app.state.runtime.throttle.clock = clock
    return clock


async def signed_up_owner(app: FastAPI) -> None:
    """The victim's account, opened from their home address (known to it from then on)."""
    async with peer(app, OWNER_HOME) as home:
        assert (await home.post("/api/users/signup", json=OWNER)).status_code == 201


async def distributed_guesses(
    app: FastAPI, clock: Clock, email: str, rounds: int, *others: FastAPI
) -> list[object]:
    """A guesser at `email` from a new address every attempt (at `app` and `others` in turn):
    each answer (status and body, and the Retry-After of a 429), waiting out each 429 on the
    clock before the next attempt."""
    answers: list[object] = []
    for n in range(rounds):
        async with peer((app, *others)[n % (1 + len(others))], f"198.51.100.{n}") as guesser:
            res = await signin(guesser, email=email)
        if res.status_code == 429:
            retry_after = assert_too_many(res)
            answers.append(retry_after)
            clock.now += retry_after
        else:
            assert only_error(res) == {"message": "Invalid credentials"}
            answers.append(res.status_code)
    return answers


async def test_one_guesser_is_stopped_at_one_account_and_the_owner_is_not(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Failures per email at one address: the guesser gets 429s, the owner elsewhere signs in."""
    await signed_up_owner(app)
    async with peer(app, "198.51.100.7") as guesser:
        assert [(await signin(guesser)).status_code for _ in range(2)] == [400, 400]
        assert_too_many(await signin(guesser))
    async with peer(app, OWNER_HOME) as home:
        assert (await signin(home, **OWNER)).status_code == 200


async def test_strangers_guesses_from_many_addresses_never_lock_the_owner_out(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Far past every limit on the email (a guesser at each of 30 addresses, until refused),
    the owner at home signs in at once, every time."""
    await signed_up_owner(app)
    clock_of(app)  # standing still: the waits the guessers get are never over
    refused = 0
    for n in range(30):
        async with peer(app, f"198.51.100.{n}") as guesser:
            for _ in range(3):
                refused += (await signin(guesser)).status_code == 429
    assert refused >= 30
    async with peer(app, OWNER_HOME) as home:
        assert (await signin(home)).status_code == 400  # a typo
        assert (await signin(home, **OWNER)).status_code == 200
        assert (await signin(home, **OWNER)).status_code == 200


async def test_a_distributed_guesser_is_slowed_by_a_growing_wait(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Past the free failures on one email (3 here), each failure from anywhere doubles the
    wait before the next attempt on it (1, 2, 4 s, then the cap of 8 s), a new address each
    time making no difference; the wait is an answer at once (429), never a minute."""
    clock = clock_of(app)
    answers = await distributed_guesses(app, clock, CREDS["email"], 14)
    assert answers == [400] * 4 + [1, 400, 2, 400, 4, 400, 8, 400, 8, 400]


async def test_the_owner_at_a_new_address_only_waits_out_the_short_wait(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await signed_up_owner(app)
    clock = clock_of(app)
    await distributed_guesses(app, clock, OWNER["email"], 12)
    async with peer(app, "192.0.2.50") as travelling:
        retry_after = assert_too_many(await signin(travelling, **OWNER))
        assert retry_after <= 8
        clock.now += retry_after
        assert (await signin(travelling, **OWNER)).status_code == 200
        # Known to the account from now on: no more waiting there.
        assert (await signin(travelling, **OWNER)).status_code == 200


async def test_the_answers_say_nothing_of_whether_an_email_has_an_account(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The same guesses at an account and at an email without one: the same answers, 429s and
    Retry-Afters included."""
    await signed_up_owner(app)
    clock = clock_of(app)
    account = await distributed_guesses(app, clock, OWNER["email"], 12)
    nobody = await distributed_guesses(app, clock, "nobody@test.com", 12)
    assert account == nobody
    assert any(isinstance(a, int) and a < 100 for a in account)  # some waits


async def test_a_success_takes_back_its_own_counts(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Counted as failures until they succeed: signing in from new addresses again and again
    never starts the wait on the email, and the owner's failures at one address start afresh
    after each success."""
    await signed_up_owner(app)
    for n in range(6):
        async with peer(app, f"192.0.2.{n}") as device:
            assert (await signin(device, **OWNER)).status_code == 200
    async with peer(app, "192.0.2.100") as device:
        assert (await signin(device)).status_code == 400
        assert (await signin(device, **OWNER)).status_code == 200
        assert (await signin(device)).status_code == 400
    # The address's own count is not taken back (3 a minute here): an attacker with an account
    # of their own cannot reset it by signing in between guesses.
    async with peer(app, "192.0.2.100") as device:
        assert_too_many(await signin(device, **OWNER))


async def test_an_email_is_limited_whatever_its_case_or_spaces(client: httpx.AsyncClient) -> None:
    """Counted by the email as normalised, so `VICTIM@test.com ` is the same account."""
    for email in ["victim@test.com", "VICTIM@test.com"]:
        assert (await signin(client, email=email)).status_code == 400
    assert_too_many(await signin(client, email=" Victim@Test.com "))


async def test_signup_is_limited_per_address_and_per_email(
    app: FastAPI, client: httpx.AsyncClient, hashes: list[str]
) -> None:
    body = {"email": "new@test.com", "password": "password123"}
    assert (await client.post("/api/users/signup", json=body)).status_code == 201
    assert (await client.post("/api/users/signup", json=body)).status_code == 400  # in use
    assert_too_many(await client.post("/api/users/signup", json={**body, "email": "n2@test.com"}))
    async with peer(app, "203.0.113.20") as other:
        # The same email from elsewhere: its own limit (2) is used up too.
        assert_too_many(await other.post("/api/users/signup", json=body))
        res = await other.post("/api/users/signup", json={**body, "email": "n3@test.com"})
        assert res.status_code == 201
    assert hashes == ["hash"] * 3


async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Through the gateway (a trusted proxy: 127.0.0.1 by default) each browser has its own
    count; a client that connects directly cannot pick a new address per attempt."""
    for n in range(4):
        # The client's own X-Forwarded-For first, then the proxy's: the proxy's is believed.
        headers = {"x-forwarded-for": f"10.9.9.9, 198.51.100.{n}"}
        res = await client.post(
            "/api/users/signin", json={**CREDS, "email": f"b{n}@test.com"}, headers=headers
        )
        assert res.status_code == 400, res.text
    async with peer(app, "203.0.113.9") as direct:
        for n in range(3):
            headers = {"x-forwarded-for": f"198.51.100.{100 + n}"}
            res = await direct.post(
                "/api/users/signin", json={**CREDS, "email": f"c{n}@test.com"}, headers=headers
            )
            assert res.status_code == 400
        headers = {"x-forwarded-for": "198.51.100.200"}
        assert_too_many(await direct.post("/api/users/signin", json=CREDS, headers=headers))


async def test_the_trusted_proxies_are_a_setting(mongo: Any, settings: Settings) -> None:
    """FORWARDED_ALLOW_IPS: in Kubernetes, the pods' network the ingress controller is on."""
    cluster = settings.model_copy(update={"forwarded_allow_ips": "10.0.0.0/8"})
    app = create_app(cluster, mongo=mongo)
    async with running(app), peer(app, "10.1.2.3") as ingress:
        for n in range(4):
            headers = {"x-forwarded-for": f"198.51.100.{n}"}
            res = await ingress.post(
                "/api/users/signin", json={**CREDS, "email": f"k{n}@test.com"}, headers=headers
            )
            assert res.status_code == 400
        async with peer(app, "127.0.0.1") as local:  # no longer trusted
            for n in range(3):
                headers = {"x-forwarded-for": f"198.51.100.{n}"}
                res = await local.post(
                    "/api/users/signin", json={**CREDS, "email": f"l{n}@test.com"}, headers=headers
                )
                assert res.status_code == 400
            assert_too_many(await local.post("/api/users/signin", json=CREDS))


@pytest.mark.parametrize(
    "value", ["lots", "", "0/minute", "10 per fortnight", "5/minute;", "-1/second"]
)
def test_a_limit_that_is_not_one_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        Settings(
            environment="test", jwt_key=TEST_JWT_KEY, rate_limit_signin_per_email_and_address=value
        )


def test_the_longest_wait_is_not_shorter_than_the_first() -> None:
    with pytest.raises(ValidationError, match="MAX_DELAY_SECONDS is below"):
        Settings(
            environment="test",
            jwt_key=TEST_JWT_KEY,
            rate_limit_signin_email_delay_seconds=10,
            rate_limit_signin_email_max_delay_seconds=5,
        )


# --- Redis ---------------------------------------------------------------------------------------

Replica = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def replica(mongo: Any, settings: Settings) -> Replica:
    """An auth process (on the same Mongo) counting in Redis at `redis_url`."""

    def replica(redis_url: str, **changes: Any) -> Any:
        replica_settings = settings.model_copy(update={"redis_url": redis_url, **changes})
        return running(create_app(replica_settings, mongo=mongo))

    return replica


def redis_url(server: ServerProcess) -> str:
    return f"redis://{server.url}/0"


@pytest.mark.connected
async def test_replicas_share_the_counts_in_redis(
    redis_server: ServerProcess, replica: Replica
) -> None:
    async with replica(redis_url(redis_server)) as one, replica(redis_url(redis_server)) as two:
        assert (await signin(one, email="x1@test.com")).status_code == 400
        assert (await signin(two, email="x2@test.com")).status_code == 400
        assert (await signin(one, email="x3@test.com")).status_code == 400
        assert_too_many(await signin(two, email="x4@test.com"))
    keys = Redis.from_url(redis_url(redis_server)).keys("ticketing-auth-limits*")
    assert keys
    # No email in Redis, only digests.
    assert not [k for k in keys if b"@" in k]


@pytest.mark.connected
async def test_with_redis_down_attempts_are_counted_in_the_process_and_it_is_logged(
    tmp_path: Path, replica: Replica, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail open to a local count: signing in works without Redis, still limited; back to
    Redis once it answers."""
    caplog.set_level(logging.INFO, logger="ticketing.auth.throttle")
    server = redis_process(tmp_path / "redis", port=free_port())  # not started: down
    async with replica(redis_url(server), rate_limit_redis_retry_seconds=0.001) as client:
        for n in range(3):
            assert (await signin(client, email=f"d{n}@test.com")).status_code == 400
        assert_too_many(await signin(client, email="d9@test.com"))
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert [w.levelno for w in warnings] == [logging.WARNING]  # once per outage

        server.start()
        try:
            probe = Redis.from_url(redis_url(server))

            async def counted_in_redis() -> bool:
                await signin(client, email="e@test.com")
                return bool(probe.keys("ticketing-auth-limits*"))

            await eventually(counted_in_redis, timeout=10, interval=0.1)
            assert any("counting in Redis again" in r.getMessage() for r in caplog.records)
        finally:
            server.stop()


async def test_a_redis_that_does_not_answer_does_not_hold_sign_ins(replica: Replica) -> None:
    """A Redis that accepts connections and never answers (overloaded, a half-open network):
    each attempt waits a fraction of a second for it, then counts in the process."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the backlog; nothing is ever read or sent
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        async with replica(url, rate_limit_redis_retry_seconds=0.001) as client:
            started = time.monotonic()
            async with asyncio.timeout(30):
                for n in range(3):
                    assert (await signin(client, email=f"s{n}@test.com")).status_code == 400
                assert_too_many(await signin(client, email="s9@test.com"))
            assert time.monotonic() - started < 10


@pytest.mark.connected
async def test_replicas_share_the_wait_per_email_and_the_known_addresses(
    redis_server: ServerProcess, mongo: Any, settings: Settings
) -> None:
    """A guesser going from one replica to the other meets the same growing wait, and the
    owner's home is known to both."""
    shared = settings.model_copy(update={"redis_url": redis_url(redis_server)})
    one, two = create_app(shared, mongo=mongo), create_app(shared, mongo=mongo)
    async with running(one), running(two):
        clock = clock_of(one)
        two.state.runtime.throttle.clock = clock
        await signed_up_owner(one)
        answers = await distributed_guesses(one, clock, OWNER["email"], 8, two)
        assert answers == [400] * 4 + [1, 400, 2, 400]
        async with peer(two, OWNER_HOME) as home:
            assert (await signin(home, **OWNER)).status_code == 200
    keys = Redis.from_url(redis_url(redis_server)).keys("ticketing-auth-limits*")
    assert any(b"/backoff/" in k for k in keys)
    assert any(b"/known/" in k for k in keys)
    assert not [k for k in keys if b"@" in k]


async def test_the_addresses_of_one_ipv6_subscriber_count_as_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Found by review: a guesser given a /64 (as every IPv6 subscriber is) could take a new
    address for each guess; its addresses count as one, another /64 apart."""
    await signed_up_owner(app)
    statuses = []
    for n in range(3):
        async with peer(app, f"2001:db8:1:2::{n + 1:x}") as guesser:
            statuses.append((await signin(guesser)).status_code)
    assert statuses[:2] == [400, 400]
    assert statuses[2] == 429
    async with peer(app, "2001:db8:1:3::1") as neighbour:
        assert (await signin(neighbour)).status_code == 400


@pytest.mark.connected
async def test_an_account_keeps_a_bounded_set_of_known_addresses(
    redis_server: ServerProcess, settings: Settings
) -> None:
    """Found by review: one key per successful sign-in from a new address let an account that
    rotates addresses fill Redis (which holds the expiry jobs too). One sorted set per
    account, its latest KNOWN_PER_ACCOUNT: the newest are known, the oldest forgotten."""
    throttle = Throttle(settings.model_copy(update={"redis_url": redis_url(redis_server)}))
    try:
        addresses = [f"198.51.100.{n}" for n in range(KNOWN_PER_ACCOUNT + 5)]
        for address in addresses:
            await throttle.succeeded("signin", address=address, email="owner@test.com")
        keys = Redis.from_url(redis_url(redis_server)).keys("ticketing-auth-limits/known/*")
        assert len(keys) == 1
        assert Redis.from_url(redis_url(redis_server)).zcard(keys[0]) == KNOWN_PER_ACCOUNT
        # The latest address is still known (no wait), the first one is not.
        assert throttle.shared is not None
        account = _digest("owner@test.com")
        now = throttle.clock()
        latest, first = (_digest("owner@test.com", a) for a in (addresses[-1], addresses[0]))
        assert await throttle.shared.known(account, latest, now)
        assert not await throttle.shared.known(account, first, now)
    finally:
        await throttle.close()
