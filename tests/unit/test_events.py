"""The wire schemas are strict: unknown fields, open enums, naive times and wrong types are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import EVENT_DATA, TALLY_CATEGORIES, TALLY_METRICS, Envelope, parse_data

pytestmark = pytest.mark.unit


def envelope(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/deployments/quang-ninh",
        "type": "vn.ketnap.candidate.admitted",
        "time": "2024-05-12T09:00:00+07:00",
        "subject": "cand-22-000123",
        "datacontenttype": "application/json",
        "data": {"branch_id": "B-C06901-03"},
    }
    return {**doc, **over}


def test_contract_example_is_valid() -> None:
    env = Envelope.model_validate(envelope())
    assert env.time.utcoffset() is not None
    assert parse_data(env.type, env.data).model_dump() == {"branch_id": "B-C06901-03", "decision_no": None}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time", "2024-05-12T09:00:00"),  # no offset
        ("time", 1715479200),  # epoch numbers carry no offset
        ("specversion", "0.3"),
        ("full_name", "Nguyễn Văn A"),  # unknown envelope field
        ("subject", None),  # candidate events need a subject
        ("datacontenttype", "text/plain"),
        ("id", ""),
    ],
)
def test_envelope_refuses(field: str, value: object) -> None:
    doc = envelope(**{field: value})
    if value is None:
        doc.pop(field)
    with pytest.raises(ValidationError):
        Envelope.model_validate(doc)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("vn.ketnap.candidate.admitted", {"branch_id": "B1", "full_name": "Nguyễn Văn A"}),
        ("vn.ketnap.candidate.sourced", {"branch_id": "B1", "profile": {"birth_year": 2000, "sex": "x"}}),
        (
            "vn.ketnap.candidate.sourced",
            {"branch_id": "B1", "profile": {"birth_year": "2000", "sex": "male"}},
        ),
        (
            "vn.ketnap.candidate.sourced",
            {"branch_id": "B1", "profile": {"birth_year": 2000, "sex": "male", "id_card": "0123"}},
        ),
        (
            "vn.ketnap.candidate.sourced",
            {
                "branch_id": "B1",
                "profile": {"birth_year": 2000, "sex": "male", "categories": ["student", "student"]},
            },
        ),
        ("vn.ketnap.candidate.dropped", {"branch_id": "B1", "reason": "bored"}),
        (
            "vn.ketnap.org.branch_registered",
            {"branch_id": "B1", "name": "Chi bộ thôn 1", "kind": "residential", "parents": {}},
        ),
        (
            "vn.ketnap.org.branch_registered",
            {"branch_id": "B1", "name": "Chi bộ thôn 1", "kind": "club", "parents": {"legacy": "C06901"}},
        ),
        ("vn.ketnap.target.set", {"unit_id": "C06901", "year": 2024, "kind": "resolution", "value": -1}),
        ("vn.ketnap.target.set", {"unit_id": "C06901", "year": 2024, "kind": "resolution", "value": True}),
        ("vn.ketnap.target.set", {"unit_id": "C06901", "year": 2024, "kind": "plan", "value": 7}),
        (
            "vn.ketnap.target.set",
            {"unit_id": "C06901", "year": 2024, "kind": "resolution", "value": 7, "metric": "votes"},
        ),
        ("vn.ketnap.target.set", {"unit_id": "X1", "year": 2024, "kind": "resolution", "value": 7}),
    ],
)
def test_data_refuses(event_type: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_data(event_type, data)


def test_target_defaults_and_parents_alias() -> None:
    target = parse_data(
        "vn.ketnap.target.set", {"unit_id": "C06901", "year": 2024, "kind": "assigned", "value": 9}
    )
    assert (target.metric, target.category) == ("admitted", "all")  # type: ignore[union-attr]
    branch = parse_data(
        "vn.ketnap.org.branch_registered",
        {"branch_id": "B-1", "name": "Chi bộ", "kind": "school", "parents": {"2025": "C06901"}},
    )
    assert branch.parents.get("2025") == "C06901"  # type: ignore[union-attr]
    assert branch.parents.get("legacy") is None  # type: ignore[union-attr]


def test_every_metric_and_category_is_accepted_on_targets() -> None:
    for metric in TALLY_METRICS:
        for category in TALLY_CATEGORIES:
            parse_data(
                "vn.ketnap.target.set",
                {
                    "unit_id": "VN",
                    "year": 2024,
                    "kind": "resolution",
                    "value": 1,
                    "metric": metric,
                    "category": category,
                },
            )


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), min_size=1, max_size=3))
def test_unknown_data_fields_never_pass(extra: dict[str, int]) -> None:
    for event_type, model in EVENT_DATA.items():
        known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        if set(extra) & known:
            continue
        with pytest.raises(ValidationError):
            parse_data(event_type, {"branch_id": "B1", **extra})
