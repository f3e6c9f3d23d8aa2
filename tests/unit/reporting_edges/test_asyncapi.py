"""docs/asyncapi.yaml describes exactly the topics of shared.topics, with payloads that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.events import EVENT_DATA
from shared.topics import TOPICS

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs"
SPEC: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())


def test_it_is_asyncapi_3() -> None:
    assert SPEC["asyncapi"] == "3.0.0"


def test_every_topic_is_a_channel_with_its_partitions_and_cleanup_policy() -> None:
    channels = {c["address"]: c for c in SPEC["channels"].values()}
    assert set(channels) == {t.name for t in TOPICS}
    for topic in TOPICS:
        kafka = channels[topic.name]["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        policy = topic.configs.get("cleanup.policy", "delete")
        assert kafka["topicConfiguration"]["cleanup.policy"] == [policy]


def test_every_event_type_has_a_message_and_every_payload_file_exists() -> None:
    messages = SPEC["components"]["messages"]
    assert {m["name"] for m in messages.values()} >= set(EVENT_DATA)
    for message in messages.values():
        reference = message["payload"]["schema"]["$ref"]
        assert (DOCS / reference).is_file(), reference


def test_every_channel_message_and_operation_reference_resolves() -> None:
    for channel in SPEC["channels"].values():
        for reference in channel["messages"].values():
            assert reference["$ref"].removeprefix("#/components/messages/") in SPEC["components"]["messages"]
    for operation in SPEC["operations"].values():
        assert operation["channel"]["$ref"].removeprefix("#/channels/") in SPEC["channels"]
