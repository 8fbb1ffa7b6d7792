"""A service's OpenAPI document, with the errors its routes really answer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ticketing_common.errors import ErrorBody, error_responses


def _error_response(code: int, ref: dict[str, str]) -> dict[str, Any]:
    """The documented answer `code` in the error shape, as `error_responses` describes it
    (with its Retry-After where one is sent), its body the document's `ErrorBody`."""
    response = {k: v for k, v in error_responses(code)[code].items() if k != "model"}
    return {**response, "content": {"application/json": {"schema": ref}}}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the errors it really answers.

    FastAPI documents a 422 with its own body wherever a route takes parameters or a body; ours
    answer 400 in the common shape (`service._errors.install_error_handlers`). So: the 422
    becomes a 400 where input is validated (a body or a query), and goes where only path ids
    are (a malformed id is a 404, which such a route declares); a route with a body can also be
    refused with a 413 (`limits.BodySizeLimit`); any may find the line full, a 503
    (`limits.ConcurrencyLimit`). The other statuses each route declares itself
    (`errors.error_responses`).
    """
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    # The error body and its item, as FastAPI names them when a route declares them.
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components.setdefault(ErrorBody.__name__, error_schema)
    ref = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            # Any request may find the line full (`limits.ConcurrencyLimit`).
            responses.setdefault("503", _error_response(503, ref))
            if responses.pop("422", None) is None:
                continue
            validates = "requestBody" in operation or any(
                p.get("in") != "path" for p in operation.get("parameters", [])
            )
            added = [400] if validates else []
            if "requestBody" in operation:
                added.append(413)
            for code in added:
                responses.setdefault(str(code), _error_response(code, ref))
    app.openapi_schema = document
    return document
