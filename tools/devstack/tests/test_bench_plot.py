"""The propagation CDF: a well-formed SVG with one line per buyer count."""

import xml.etree.ElementTree as ET

from ticketing_devstack.bench.plot import cdf_svg


def test_the_cdf_is_an_svg_with_a_line_and_a_legend_per_series() -> None:
    svg = cdf_svg({"1 buyer": [12.0, 15.0, 30.0], "50 buyers": [200.0, 450.0, 1300.0]}, "t")
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "1 buyer" in texts
    assert "50 buyers" in texts
    assert "10000" in texts  # the axis reaches the decade above the slowest


def test_an_empty_series_still_draws() -> None:
    ET.fromstring(cdf_svg({"none": []}, "t"))  # noqa: S314 - our own output
