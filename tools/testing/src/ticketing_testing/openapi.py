"""Fuzzing a service against its own OpenAPI document with schemathesis, in-process.

Each service's `test_openapi.py` draws requests for its operations from the document its app
serves: valid ones (positive) and, where the document constrains input (a body, a query),
invalid ones (negative), and sends them over `httpx.ASGITransport` to the app its fixtures run
(in-memory Mongo and bus) as a signed-in user. Every answer must be documented: no 5xx, its
status listed for the operation, its body valid against that status's schema, its headers too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case as AnyCase
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# What is checked of every answer (not whether valid input is accepted: the API validates more
# than a JSON schema can say, a unique email or a ticket on sale).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25

Operation = APIOperation[Any, Any, Any, Any]
Case = AnyCase[Any]


def schema_of(app: FastAPI) -> BaseSchema:
    """The OpenAPI document the app serves at its docs URL, loaded by schemathesis."""
    return schemathesis.openapi.from_dict(app.openapi())


def operations(schema: BaseSchema) -> list[Operation]:
    """Every operation of the document (one schemathesis cannot read fails the test)."""
    found: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        found.append(result.ok())
    return found


def fuzz_settings(schema: BaseSchema) -> Any:
    """Hypothesis settings: a bounded number of examples for each operation."""
    return settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations(schema)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )


def _has_input(operation: Operation) -> bool:
    """Input that can be invalid: a body or a query parameter (any string is a valid id)."""
    definition = operation.definition.raw
    return "requestBody" in definition or any(
        p.get("in") != "path" for p in definition.get("parameters", [])
    )


def _strategy(schema: BaseSchema, known: Mapping[str, str]) -> st.SearchStrategy[Case]:
    strategies: list[st.SearchStrategy[Case]] = []
    for operation in operations(schema):
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE))
        names = {p.name for p in operation.path_parameters}
        if names and names <= known.keys():
            # Ids that exist too, or every draw is a 404.
            strategies.append(
                operation.as_strategy(
                    GenerationMode.POSITIVE, path_parameters={n: known[n] for n in names}
                )
            )
        if _has_input(operation):
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def cases(
    schema: BaseSchema, path_parameters: Mapping[str, str] | None = None
) -> st.SearchStrategy[Case]:
    """Requests for every operation of `schema`, some with the given existing ids in the path
    (built once for each schema and ids: the test draws from it once per example)."""
    key = (id(schema), tuple(sorted((path_parameters or {}).items())))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _strategy(schema, path_parameters or {})
    return _STRATEGIES[key]


_STRATEGIES: dict[tuple[int, tuple[tuple[str, str], ...]], st.SearchStrategy[Case]] = {}


async def send(
    client: httpx.AsyncClient, case: Case, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """Send the case to the app behind `client` (with `headers`, e.g. a session cookie)."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    data = kwargs.get("data")
    return await client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers={**kwargs.get("headers", {}), **(headers or {})},
        json=kwargs.get("json"),
        content=data.encode() if isinstance(data, str) else data,
    )


def validate(case: Case, response: httpx.Response) -> None:
    """Raise (schemathesis' failures, with a curl command to reproduce) unless the answer is
    documented for the case's operation."""
    case.validate_response(response, checks=CHECKS)
