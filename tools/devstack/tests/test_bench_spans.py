"""The span-cost figure: each mode is measured, and a sampled span costs more than none."""

from ticketing_devstack.bench.spans import compare


async def test_a_sampled_request_costs_more_than_one_with_tracing_off() -> None:
    result = await compare(requests=2000)
    assert set(result) == {"off", "not sampled", "sampled"}
    # A sampled span (made, ended, exported) costs several times the bare middleware: a
    # measurement that did not trace at all would fail here.
    assert result["sampled"] > 2 * result["off"] > 0
