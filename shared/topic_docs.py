"""The topics' AsyncAPI document and JSON Schemas, served by every service (CONTRACT.md section 4).

The contract asks for both to be "served by the services and kept in the
repository". The schemas are generated from the wire models at start-up (the same
bytes `make schemas` commits to `docs/schemas/`, a test keeps them equal). The
AsyncAPI document is `docs/asyncapi.yaml`: the wheel carries it as
`shared/asyncapi.yaml` (hatch force-include, see pyproject.toml), a checkout reads
it in place. Its payload references are relative (`./schemas/<name>`), so a tool
that fetches `/v1/asyncapi.yaml` resolves them to `/v1/schemas/<name>` here.

Open to every caller, also with reads closed: they describe the wire, not its data.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, FastAPI
from fastapi import Path as PathParam
from fastapi.responses import Response

from shared.http import Problem, problem_responses
from shared.schemas_export import all_schemas, render

YAML: Final = "application/yaml"
_IN_CHECKOUT: Final = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"


@cache
def asyncapi_document() -> bytes:
    packaged = files("shared").joinpath("asyncapi.yaml")
    if packaged.is_file():
        return packaged.read_bytes()
    return _IN_CHECKOUT.read_bytes()


@cache
def rendered_schemas() -> dict[str, bytes]:
    return {name: render(schema) for name, schema in sorted(all_schemas().items())}


SchemaName = Annotated[str, PathParam(json_schema_extra={"enum": list(rendered_schemas())})]


def install_topic_docs(app: FastAPI) -> None:  # called by shared.http.create_service_app
    """Add `GET /v1/asyncapi.yaml`, `GET /v1/schemas` and `GET /v1/schemas/{name}`."""
    names = list(rendered_schemas())
    router = APIRouter(prefix="/v1", tags=["topics"])

    @router.get(
        "/asyncapi.yaml",
        summary="AsyncAPI 3.0 document of every topic ketnap writes",
        response_class=Response,
        responses={200: {"content": {YAML: {"schema": {"type": "object"}}}}},
    )
    async def asyncapi() -> Response:
        return Response(asyncapi_document(), media_type=YAML)

    @router.get("/schemas", summary="The topics' and events' JSON Schemas, by name")
    async def schema_index() -> dict[str, list[dict[str, str]]]:
        return {"schemas": [{"name": name, "href": f"/v1/schemas/{name}"} for name in names]}

    @router.get(
        "/schemas/{name}",
        summary="One JSON Schema (draft 2020-12)",
        response_class=Response,
        responses={
            200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}},
            **problem_responses(404),
        },
    )
    async def schema(name: SchemaName) -> Response:
        body = rendered_schemas().get(name)
        if body is None:
            raise Problem(404, "unknown_schema", f"no schema named {name!r}; GET /v1/schemas lists them")
        return Response(body, media_type="application/schema+json")

    app.include_router(router)
