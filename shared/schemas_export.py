"""Generate the JSON Schemas of every event type and every outgoing message into a folder.

``make schemas`` writes ``docs/schemas/``; a test fails when the committed files are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from shared.events import EVENT_DATA, VOIDED, Envelope, short_type
from shared.messages import Rejection, RollupDocument, TallyChange


def event_schema(event_type: str, data_model: type[BaseModel]) -> dict[str, Any]:
    """The envelope's schema with ``type`` pinned and ``data`` replaced by the type's own model."""
    envelope = Envelope.model_json_schema()
    data = data_model.model_json_schema(by_alias=True)
    defs = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    envelope["properties"]["type"] = {"const": event_type, "title": "Type", "type": "string"}
    if event_type != VOIDED:  # the intake's extension of a void only (refused elsewhere)
        envelope["properties"].pop("voidscope")
    envelope["properties"]["data"] = data
    envelope["title"] = event_type
    if defs:
        envelope["$defs"] = defs
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **envelope}


def all_schemas() -> dict[str, dict[str, Any]]:
    schemas = {f"event.{short_type(t)}.json": event_schema(t, m) for t, m in EVENT_DATA.items()}
    for name, model in (("tally-change", TallyChange), ("rejection", Rejection), ("rollup", RollupDocument)):
        schemas[f"topic.{name}.json"] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **model.model_json_schema(),
        }
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in all_schemas().items():
        (out / name).write_bytes(render(schema))
    print(f"wrote {len(all_schemas())} schemas to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
