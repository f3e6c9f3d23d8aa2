"""The autovacuum stand-in decides as autovacuum's default thresholds do (no database here)."""

from __future__ import annotations

import pytest

from benchmarks.vacuum import TableStats, command, due

pytestmark = pytest.mark.unit


def test_a_table_is_vacuumed_past_fifty_dead_rows_and_a_fifth_of_its_rows() -> None:
    assert due(TableStats("t", live=1000, dead=250, modified_since_analyze=0)) == (False, False)
    assert due(TableStats("t", live=1000, dead=251, modified_since_analyze=0)) == (True, False)
    assert due(TableStats("quota_outbox", live=0, dead=51, modified_since_analyze=0)) == (True, False)


def test_a_table_is_analysed_past_fifty_changes_and_a_tenth_of_its_rows() -> None:
    assert due(TableStats("t", live=1000, dead=0, modified_since_analyze=150)) == (False, False)
    assert due(TableStats("t", live=1000, dead=0, modified_since_analyze=151)) == (False, True)


def test_the_statement_does_what_is_due_and_quotes_the_name() -> None:
    assert command("t", vacuum=False, analyse=False) is None
    assert command("t", vacuum=True, analyse=False) == 'VACUUM "t"'
    assert command("t", vacuum=False, analyse=True) == 'ANALYZE "t"'
    assert command('we"ird', vacuum=True, analyse=True) == 'VACUUM (ANALYZE) "we""ird"'
