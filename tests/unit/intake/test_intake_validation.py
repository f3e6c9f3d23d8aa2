"""Structural validation of one item: one pass over envelope and data, codes invalid_schema/unknown_type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.domain.validation import (
    Refusal,
    Unreadable,
    content_hash,
    item_id,
    validate_item,
)
from shared.events import EVENT_DATA, CandidateAdmitted, Envelope, TargetSet

pytestmark = pytest.mark.unit


def contract_example(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10",
        "source": "/deployments/quang-ninh",
        "type": "vn.ketnap.candidate.admitted",
        "time": "2024-05-12T09:00:00+07:00",
        "subject": "cand-22-000123",
        "datacontenttype": "application/json",
        "data": {"branch_id": "B-C06901-03"},
    }
    return {**doc, **over}


def refusal(item: object) -> Refusal:
    result = validate_item(item)
    assert isinstance(result, Refusal), result
    return result


def test_contract_example_validates_with_typed_data() -> None:
    event = validate_item(contract_example())
    assert isinstance(event, Envelope)
    assert isinstance(event.data, CandidateAdmitted)
    assert event.data.branch_id == "B-C06901-03"


def test_target_without_subject_is_fine() -> None:
    data = {"unit_id": "P22", "year": 2024, "kind": "resolution", "value": 7}
    event = validate_item(contract_example(type="vn.ketnap.target.set", data=data, subject=None))
    assert isinstance(event, Envelope)
    assert isinstance(event.data, TargetSet)
    assert event.data.metric == "admitted"


@pytest.mark.parametrize(
    ("item", "in_detail"),
    [
        (contract_example(data={"branch_id": "B1", "full_name": "Nguyễn Văn A"}), "data.full_name"),
        (contract_example(full_name="Nguyễn Văn A"), "full_name"),
        (contract_example(time="2024-05-12T09:00:00"), "time"),
        (contract_example(specversion="0.3"), "specversion"),
        (contract_example(subject=None), "subject"),
        (contract_example(id=""), "id"),
        (contract_example(id=7), "id"),
        (contract_example(data={}), "data.branch_id"),
        (contract_example(recordedtime="2024-05-12T09:00:00Z"), "recordedtime"),
        (contract_example(voidscope="P22"), "voidscope: set by the intake"),
        (
            contract_example(
                type="vn.ketnap.candidate.voided", data={"voids": "e1", "reason": "x"}, voidscope="*"
            ),
            "voidscope: set by the intake",
        ),
        ({"specversion": "1.0"}, "type"),
        ([contract_example()], "array"),
        ("an event", "string"),
        (None, "null"),
        (Unreadable(3, "unexpected character"), "line 3"),
    ],
)
def test_invalid_schema(item: object, in_detail: str) -> None:
    refused = refusal(item)
    assert refused.code == "invalid_schema"
    assert in_detail in refused.detail


def test_unknown_type_is_told_apart_from_a_bad_schema() -> None:
    assert refusal(contract_example(type="vn.ketnap.candidate.hired")).code == "unknown_type"
    assert refusal(contract_example(type=5)).code == "invalid_schema"


def test_detail_is_bounded() -> None:
    data = {f"name{i}": "x" for i in range(30)}
    detail = refusal(contract_example(data=data)).detail
    assert "(+" in detail
    assert len(detail) < 1000


def test_item_id_is_echoed_only_when_a_string() -> None:
    assert item_id(contract_example()) == "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10"
    assert item_id(contract_example(id=5)) is None
    assert item_id([1]) is None


def test_every_type_has_a_typed_envelope() -> None:
    for event_type in EVENT_DATA:
        refused = validate_item(contract_example(type=event_type, data={"nope": 1}))
        assert isinstance(refused, Refusal)
        assert refused.code == "invalid_schema"


@given(
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), max_size=6)
)
def test_hash_ignores_key_order_only(doc: dict[str, Any]) -> None:
    reordered = dict(reversed(list(doc.items())))
    assert content_hash(doc) == content_hash(reordered)
    assert content_hash(doc) != content_hash({**doc, "extra-key-not-in-doc": 1})


def test_hash_sees_any_change_of_content() -> None:
    assert content_hash(contract_example()) != content_hash(contract_example(time="2024-05-12T02:00:00Z"))
