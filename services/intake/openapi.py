"""OpenAPI documentation of ``POST /v1/events``: body forms, answers and every error, with examples.

The route reads its body itself (size cap, NDJSON), so the request body is
documented here rather than inferred from a parameter; the event schema is the
one the intake validates with (``EVENT_ADAPTER``), inlined so that the document
needs no extra components.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field

from services.intake.body import MAX_EVENTS, NDJSON
from services.intake.domain.validation import EVENT_ADAPTER, INTAKE_EXTENSIONS
from shared.http import PROBLEM_JSON, problem_responses

CONTRACT_EXAMPLE: Final[dict[str, Any]] = {
    "specversion": "1.0",
    "id": "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10",
    "source": "/deployments/quang-ninh",
    "type": "vn.ketnap.candidate.admitted",
    "time": "2024-05-12T09:00:00+07:00",
    "subject": "cand-22-000123",
    "datacontenttype": "application/json",
    "data": {"branch_id": "B-C06901-03"},
}
REGISTRATION_EXAMPLE: Final[dict[str, Any]] = {
    "specversion": "1.0",
    "id": "7d0c1f0e-93a4-4d55-8a52-0d8f2b1e7c01",
    "source": "/deployments/quang-ninh",
    "type": "vn.ketnap.org.branch_registered",
    "time": "2024-01-02T08:00:00+07:00",
    "data": {
        "branch_id": "B-C06901-03",
        "name": "Chi bộ thôn 3",
        "kind": "residential",
        "parents": {"legacy": "C06901", "2025": "C06913"},
    },
}
SOURCED_EXAMPLE: Final[dict[str, Any]] = {
    "specversion": "1.0",
    "id": "5a2e9c3b-1f7d-4b8e-9c0a-6d4f3e2b1a09",
    "source": "/deployments/quang-ninh",
    "type": "vn.ketnap.candidate.sourced",
    "time": "2024-02-01T09:00:00+07:00",
    "subject": "cand-22-000123",
    "data": {
        "branch_id": "B-C06901-03",
        "profile": {"birth_year": 1999, "sex": "female", "categories": ["ethnic_minority", "youth_union"]},
    },
}


DRY_RUN: Final[dict[str, Any]] = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "description": "Validate and answer, but publish and record nothing.",
    "schema": {"type": "boolean", "default": False},
}


class EventError(BaseModel):
    code: str = Field(
        description="invalid_schema, unknown_type, unknown_branch, unknown_unit, out_of_scope, "
        "future_time or id_conflict"
    )
    detail: str


class EventResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})

    id: str | None = Field(description="The event's id; null when the item was not an object with one")
    status: str = Field(
        description="accepted, duplicate or rejected", pattern="^(accepted|duplicate|rejected)$"
    )
    error: EventError | None = Field(default=None, description="Present when rejected")


class IngestAnswer(BaseModel):
    """One result per event, in request order."""

    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: int = Field(ge=0)
    results: list[EventResult]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def event_schema() -> dict[str, Any]:
    """JSON Schema of one incoming event, refs inlined; no ``recordedtime`` nor ``voidscope``: the
    intake adds those extensions itself and refuses them from a client."""
    raw = EVENT_ADAPTER.json_schema()
    defs = raw.pop("$defs", {})
    for name, definition in defs.items():
        if name.startswith("Event_"):
            for extension in INTAKE_EXTENSIONS:
                definition["properties"].pop(extension, None)
    schema: dict[str, Any] = _inline(raw, defs)
    return schema


def request_body() -> dict[str, Any]:
    """The body as HTTP sees it: an object or an array (anything else is ``400``), or NDJSON text.

    Each event is then validated on its own against ``#/components/schemas/CloudEvent`` and
    answered in ``results`` (``200``/``202``): a schema-violating *event* is not a
    schema-violating *request*, which is why the event schema is not the body schema.
    """
    ndjson = b"\n".join(orjson.dumps(e) for e in (REGISTRATION_EXAMPLE, SOURCED_EXAMPLE)).decode() + "\n"
    return {
        "required": True,
        "description": (
            f"One event, a JSON array of events, or NDJSON ({NDJSON}, one event per line); "
            f"at most {MAX_EVENTS} events or 16 MiB per request (413 beyond). Each event is "
            "checked against the CloudEvent schema (components/schemas/CloudEvent) on its own "
            "and answered in `results`."
        ),
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array"}]},
                "examples": {
                    "one_event": {"summary": "One event (the contract's example)", "value": CONTRACT_EXAMPLE},
                    "array": {
                        "summary": "An array: a branch, then a candidate in it",
                        "value": [REGISTRATION_EXAMPLE, SOURCED_EXAMPLE],
                    },
                },
            },
            NDJSON: {
                "schema": {"description": "NDJSON text: one CloudEvent per line"},
                "examples": {"ndjson": {"summary": "Two events as NDJSON", "value": ndjson}},
            },
        },
    }


def with_event_schema(document: dict[str, Any]) -> dict[str, Any]:
    """Add ``components/schemas/CloudEvent`` (the schema each event is validated against)."""
    document.setdefault("components", {}).setdefault("schemas", {})["CloudEvent"] = event_schema()
    return document


CORRELATION_HEADER: Final = {
    "X-Correlation-ID": {
        "description": "The request's X-Correlation-ID, or one made up for it; also on the published events",
        "schema": {"type": "string"},
    }
}


def _answer(description: str, examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": IngestAnswer,
        "description": description,
        "headers": CORRELATION_HEADER,
        "content": {"application/json": {"examples": examples}},
    }


MIXED: Final = {
    "accepted": 1,
    "duplicates": 1,
    "rejected": 1,
    "results": [
        {"id": REGISTRATION_EXAMPLE["id"], "status": "duplicate"},
        {"id": SOURCED_EXAMPLE["id"], "status": "accepted"},
        {
            "id": "c1",
            "status": "rejected",
            "error": {"code": "unknown_branch", "detail": "branch_id: branch B-X is not registered"},
        },
    ],
}
NOTHING_NEW: Final = {
    "accepted": 0,
    "duplicates": 1,
    "rejected": 0,
    "results": [{"id": CONTRACT_EXAMPLE["id"], "status": "duplicate"}],
}
PROBLEMS: Final = {
    400: [
        ("malformed_body", "body is not JSON: unexpected character: line 1 column 2 (char 1)"),
        ("invalid_request", "dry_run must be true or false, not 'maybe'"),
    ],
    401: [("unauthorized", "a valid bearer token is required")],
    413: [("payload_too_large", "10001 events; at most 10000 per request")],
    415: [("unsupported_media_type", "Content-Type 'text/plain' not accepted")],
    503: [
        ("broker_unavailable", "no ack from the broker in time; retry after the Retry-After seconds"),
        ("database_unavailable", "intake database unavailable (ConnectionRefusedError); retry"),
        ("concurrent_writers", "ids were claimed concurrently by another writer; retry"),
    ],
}


def _problem_examples(status: int) -> dict[str, Any]:
    return {
        code: {
            "summary": code,
            "value": {
                "type": f"https://ketnap.example/problems/{code}",
                "title": code.replace("_", " "),
                "status": status,
                "code": code,
                "detail": detail,
                "instance": "/v1/events",
            },
        }
        for code, detail in PROBLEMS[status]
    }


def responses() -> dict[int | str, dict[str, Any]]:
    # problem_responses shares one dict between statuses: copy each before adding examples.
    documented = {status: copy.deepcopy(entry) for status, entry in problem_responses(*PROBLEMS).items()}
    for status, entry in documented.items():
        assert isinstance(status, int)
        entry["content"][PROBLEM_JSON]["examples"] = _problem_examples(status)
        entry["headers"] = dict(CORRELATION_HEADER)
        if status == 503:
            entry["headers"]["Retry-After"] = {
                "description": "Seconds to wait",
                "schema": {"type": "integer"},
            }
        if status == 401:
            entry["headers"]["WWW-Authenticate"] = {"schema": {"type": "string"}}
    return {
        202: _answer(
            "At least one event was new and is durably in Kafka (acks=all)", {"mixed": {"value": MIXED}}
        ),
        200: _answer(
            "Nothing was new (duplicates and rejections only)", {"nothing_new": {"value": NOTHING_NEW}}
        ),
        **documented,
    }
