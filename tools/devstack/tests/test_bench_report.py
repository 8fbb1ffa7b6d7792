"""The pure parts of `make bench`: percentiles and the table."""

import math

from ticketing_devstack.bench.report import Figure, ms, per_second, percentile, table


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert math.isclose(percentile(list(map(float, range(1, 101))), 99), 99.01)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_the_table_has_one_line_per_figure_and_aligned_columns() -> None:
    figures = [
        Figure("currentuser", "1,500 req/s (0.18x)", "8,400 req/s", ">= 0.4x", False),
        Figure("round trips", "5.00", passed=None),
        Figure("memory", "70 MB", "65 MB idle", "<= 150 MB", True),
    ]
    lines = table(figures).splitlines()
    assert len(lines) == 2 + len(figures)
    assert len({len(line) for line in lines}) == 1
    assert lines[0].split("|")[1].strip() == "figure"
    assert [line.split("|")[-2].strip() for line in lines[2:]] == ["FAIL", "-", "PASS"]


def test_units() -> None:
    assert ms(0.0123) == "12.3 ms"
    assert ms(math.nan) == "n/a"
    assert per_second(1234.4) == "1,234/s"
    assert per_second(35.26) == "35.3/s"


def test_a_figure_as_json_carries_its_verdict() -> None:
    raw = Figure("x", "1", passed=True, data={"p50": 0.1}).as_json()
    assert (raw["verdict"], raw["data"]) == ("PASS", {"p50": 0.1})
