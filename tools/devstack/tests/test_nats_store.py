"""The JetStream store the streams' byte limits are sized for, stated the same everywhere: the
deployment's nats.conf, the local stack's nats-server, and `bus/streams.py`; and the consumers
registry matching what the services subscribe to (issue 21)."""

import re
from pathlib import Path

import nats
import pytest
from pydantic import ByteSize, TypeAdapter

from ticketing_common.bus.jetstream import declare_streams
from ticketing_common.bus.streams import DEFAULT_MAX_BYTES, STORE_BYTES
from ticketing_devstack.stack import NATS_CONFIG, Stack
from ticketing_testing.servers import ServerProcess, free_port

ROOT = Path(__file__).parents[3]


def max_file_store(config: str) -> int:
    (value,) = re.findall(r"^\s*max_file_store:\s*(\S+)", config, re.MULTILINE)
    # nats-server reads "4G" as 4e9 bytes but "4GiB" (and "4GB") as 4 GiB; say it in GiB.
    assert value.endswith("iB"), value
    return int(TypeAdapter(ByteSize).validate_python(value))


def test_the_deployment_and_the_local_stack_give_jetstream_the_store_the_limits_fit() -> None:
    deployed = max_file_store((ROOT / "infra/k8s/base/nats.conf").read_text())
    assert deployed == max_file_store(NATS_CONFIG) == STORE_BYTES
    # A quarter left for the server's own files and a stream added later.
    assert sum(DEFAULT_MAX_BYTES.values()) <= STORE_BYTES * 3 // 4


@pytest.mark.connected
async def test_the_local_stacks_nats_server_takes_the_default_streams(tmp_path: Path) -> None:
    """The server reserves each stream's max_bytes in its store and refuses a stream that does
    not fit (10047): with the local stack's flags, every default stream is declared."""
    port = free_port()
    store = tmp_path / "nats"
    store.mkdir()
    args = Stack(tmp_path)._nats_args(port, store)
    server = ServerProcess("nats", args, port, tmp_path / "nats.log")
    server.start()
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream()
        await declare_streams(js)
        for name, max_bytes in DEFAULT_MAX_BYTES.items():
            assert (await js.stream_info(name)).config.max_bytes == max_bytes
        await nc.close()
    finally:
        server.stop()


@pytest.mark.parametrize("service", ["tickets", "orders", "expiration", "payments"])
def test_every_service_consumes_exactly_its_entry_in_the_consumers_registry(service: str) -> None:
    """What each service's bus checks when it starts (and refuses to start on): checked here
    too, so a handler added without its registry entry fails in the tests, not at deploy."""
    import importlib

    from ticketing_common.bus.streams import CONSUMERS

    listeners = importlib.import_module(f"ticketing_{service}.listeners")
    assert set(listeners.HANDLERS) == set(CONSUMERS[service])
