"""Request bodies (validation.py): our messages on the fields, exact decimal amounts."""

import httpx
import pytest


async def test_validation_errors_are_400_with_field_and_our_message(
    client: httpx.AsyncClient,
) -> None:
    res = await client.post("/api/things", json={"title": "  ", "price": -1})
    assert res.status_code == 400
    assert res.json() == {
        "errors": [
            {"message": "Title is required", "field": "title"},
            {"message": "Price must be greater than 0", "field": "price"},
        ]
    }


@pytest.mark.parametrize("price", [0, "0", -5, "abc", "1.234", True, None, [], "NaN", "Infinity"])
async def test_bad_prices_are_rejected(client: httpx.AsyncClient, price: object) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": price})
    assert res.status_code == 400
    assert res.json()["errors"] == [{"message": "Price must be greater than 0", "field": "price"}]


@pytest.mark.parametrize(("price", "exact"), [(19.99, "19.99"), ("20", "20.00"), (0.1, "0.10")])
async def test_good_prices_are_exact_decimals(
    client: httpx.AsyncClient, price: object, exact: str
) -> None:
    res = await client.post("/api/things", json={"title": "t", "price": price})
    assert res.status_code == 201
    assert res.json()["price"] == exact
