"""The consumer figure: both consumers take every message and their CPU is counted."""

import pytest

from ticketing_devstack.bench.consumer import compare


@pytest.mark.connected
async def test_both_consumers_take_every_message_and_are_measured() -> None:
    result = await compare(messages=40, rate=400)
    # A timeout (a consumer that missed messages) raises; each used some CPU per message.
    assert result["ours_us"] > 0
    assert result["nats_py_fetch_us"] > 0
