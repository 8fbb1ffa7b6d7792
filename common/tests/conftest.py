from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI, Query
from pydantic import BeforeValidator
from pymongo.errors import ServerSelectionTimeoutError

from ticketing_common.auth import CurrentUser
from ticketing_common.bus import Bus, InMemoryBus, JetStreamBus
from ticketing_common.bus.memory import InMemoryBroker
from ticketing_common.errors import BadRequestError, NotFoundError
from ticketing_common.service import ServiceSpec, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_common.validation import RequestBody, money_check, text_check
from ticketing_testing.apps import TEST_JWT_KEY, sign_in
from ticketing_testing.servers import ServerProcess, nats_process

BusFactory = Callable[..., Bus]


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.connected)])
async def make_bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusFactory]:
    """Build buses (one per simulated process) on the fake or on a real nats-server."""
    created: list[Bus] = []
    server: ServerProcess | None = None
    broker = InMemoryBroker()
    if request.param == "nats":
        server = nats_process(tmp_path / "nats")
        server.start()

    def factory(
        service: str = "svc",
        *,
        ack_wait: float = 5.0,
        max_deliver: int = 3,
        retry_delay: float = 0.05,
        **options: Any,
    ) -> Bus:
        """`options`: the buses' other keyword arguments (max_retry_delay, retry_horizon,
        max_hold_delay, max_handler_seconds), shrunk by tests that need them short."""
        bus: Bus
        if server is None:
            bus = InMemoryBus(
                service,
                broker=broker,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                retry_delay=retry_delay,
                **options,
            )
        else:
            bus = JetStreamBus(
                f"nats://{server.url}",
                service,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                retry_delay=retry_delay,
                **options,
            )
        created.append(bus)
        return bus

    factory.server = server  # type: ignore[attr-defined]
    factory.broker = broker  # type: ignore[attr-defined]
    yield factory
    for bus in created:
        await bus.close()
    if server is not None:
        server.stop()


@pytest.fixture
def any_db(any_mongo: Any) -> Any:
    """A database on the in-memory Mongo and on nx-27017 through the real driver."""
    return any_mongo["test"]


# --- "things": an app of the service factory, for its error shape, limits, validation, auth ----

router = APIRouter(prefix="/api/things")


class ThingCreate(RequestBody):
    title: Annotated[str, BeforeValidator(text_check("Title is required"))]
    price: Annotated[Any, BeforeValidator(money_check("Price must be greater than 0"))]


@router.post("", status_code=201)
async def create(body: ThingCreate, user: CurrentUser) -> dict[str, Any]:
    return {"title": body.title, "price": str(body.price), "by": user.id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals /etc/passwd")


@router.get("/db-down")
async def db_down() -> None:
    raise ServerSelectionTimeoutError("127.0.0.1:1: connection refused")


@router.get("/rule")
async def rule() -> None:
    raise BadRequestError("Ticket is already reserved")


@router.get("/missing")
async def missing() -> None:
    raise NotFoundError()


@router.get("/paged")
async def paged(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, int]:
    return {"limit": limit}


@router.post("/bg")
async def bg(tasks: BackgroundTasks) -> dict[str, str]:
    return {}


# The one user `client` is signed in as.
USER_ID = "u1"
ThingsApp = Callable[..., FastAPI]


@pytest.fixture
def settings() -> ServiceSettings:
    return ServiceSettings(
        service_name="things", environment="test", jwt_key=TEST_JWT_KEY, max_body_bytes=1024
    )


@pytest.fixture
def things_app(mongo: Any, bus: InMemoryBus) -> ThingsApp:
    """The "things" app with the given settings."""

    def make(settings: ServiceSettings) -> FastAPI:
        spec = ServiceSpec(name="things", routers=[router])
        return create_service_app(spec, settings, mongo=mongo, bus=bus)

    return make


@pytest.fixture
def app(things_app: ThingsApp, settings: ServiceSettings) -> FastAPI:
    return things_app(settings)


@pytest.fixture
def client(client: httpx.AsyncClient, settings: ServiceSettings) -> httpx.AsyncClient:
    sign_in(client, settings, USER_ID)
    return client
