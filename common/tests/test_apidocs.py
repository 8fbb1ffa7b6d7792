"""The documentation page a service serves itself (`_apidocs.docs_router`): no inline script
or style, a strict Content-Security-Policy, Swagger UI's files from the service with long
cache lives, and an initializer pointed at the service's own document.

In a real browser, against a real service: client/tests/test_apidocs_browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from ticketing_common._apidocs import STATIC, docs_router

PREFIX = "/api/things"


class Markup(HTMLParser):
    """What a page loads and runs: its scripts (with their inline text), stylesheets, styles
    and event handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []  # each script's src (None: inline)
        self.inline_code: list[str] = []
        self.links: list[str] = []
        self.styles = 0  # <style> elements and style="" attributes
        self.handlers: list[str] = []  # onload="", onclick="", ...
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.handlers += [name for name in named if name.startswith("on")]
        self.styles += tag == "style" or "style" in named
        if tag == "script":
            self.scripts.append(named.get("src"))
            self._in_script = True
        if tag == "link" and named.get("href"):
            self.links.append(str(named["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_code.append(data)


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header by directive."""
    parts = (d.split() for d in policy.split(";") if d.strip())
    return {name: sources for name, *sources in parts}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    things = APIRouter(prefix=PREFIX)

    @things.get("/{thing_id}")
    async def show(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app = FastAPI(
        title="ticketing-things",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
    )
    # As the service factory does: the docs ahead of the API's routes (`/{thing_id}` would
    # take "docs" for an id).
    app.include_router(docs_router(PREFIX))
    app.include_router(things)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def page_markup(client: httpx.AsyncClient) -> Markup:
    page = await client.get(f"{PREFIX}/docs")
    assert page.status_code == 200
    markup = Markup()
    markup.feed(page.text)
    return markup


async def test_the_page_runs_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    page = await client.get(f"{PREFIX}/docs")
    assert page.headers["content-type"].startswith("text/html")
    markup = await page_markup(client)
    assert markup.inline_code == []
    assert markup.handlers == []
    assert markup.styles == 0
    assert len(markup.scripts) == 2
    for src in [*markup.scripts, *markup.links]:
        assert src is not None
        assert src.startswith(f"{PREFIX}/docs/"), src  # the service's own, under its prefix


async def test_the_page_names_the_document_for_a_reader_without_javascript(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(f"{PREFIX}/docs")
    assert f'<a href="{PREFIX}/openapi.json">' in page.text
    assert "<title>ticketing-things - Swagger UI</title>" in page.text


async def test_the_page_is_sent_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(f"{PREFIX}/docs")
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    # Swagger UI's icons are data: images in its stylesheet.
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "unsafe" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"


async def test_the_assets_are_the_packages_files_with_their_types_and_a_long_cache(
    client: httpx.AsyncClient,
) -> None:
    markup = await page_markup(client)
    urls = [src for src in markup.scripts if src and "/static/" in src] + markup.links
    types: dict[str, str] = {}
    for url in urls:
        res = await client.get(url)
        assert res.status_code == 200, url
        name = url.rsplit("/", 1)[1]
        assert res.content == (STATIC / name).read_bytes()
        assert res.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert res.headers["x-content-type-options"] == "nosniff"
        types[name] = res.headers["content-type"]
    assert types == {
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "swagger-ui.css": "text/css; charset=utf-8",
        "favicon.png": "image/png",
    }


async def test_the_assets_paths_carry_the_packages_version(client: httpx.AsyncClient) -> None:
    """What makes the year-long cache safe: an upgrade serves them under other URLs."""
    markup = await page_markup(client)
    bundle = next(src for src in markup.scripts if src and src.endswith("swagger-ui-bundle.js"))
    version = bundle.removeprefix(f"{PREFIX}/docs/static/").split("/")[0]
    assert version
    assert version[0].isdigit()
    other = bundle.replace(f"/{version}/", "/0.0.0/")
    assert (await client.get(other)).status_code == 404
    missing = bundle.replace("swagger-ui-bundle.js", "redoc.standalone.js")
    assert (await client.get(missing)).status_code == 404  # only what the page uses


async def test_the_initializer_points_swagger_ui_at_the_services_document(
    client: httpx.AsyncClient,
) -> None:
    markup = await page_markup(client)
    (init,) = [src for src in markup.scripts if src and "/static/" not in src]
    res = await client.get(init)
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/javascript; charset=utf-8"
    assert res.headers["cache-control"] == "no-cache"
    assert f'"url": "{PREFIX}/openapi.json",' in res.text
    assert '"dom_id": "#swagger-ui",' in res.text
    # The online validator would be a request to another host.
    assert '"validatorUrl": null,' in res.text
    assert "SwaggerUIBundle({" in res.text


async def test_head_is_answered_without_a_body(client: httpx.AsyncClient) -> None:
    res = await client.head(f"{PREFIX}/docs")
    assert res.status_code == 200
    assert res.content == b""


async def test_none_of_it_is_in_the_document(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{PREFIX}/openapi.json")).json()
    assert list(document["paths"]) == [f"{PREFIX}/{{thing_id}}"]


async def test_the_api_route_after_it_still_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{PREFIX}/abc")).json() == {"id": "abc"}
