"""The typed accumulators' byte forms: exact round trips, and room for new fields."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from fairuse.ledger.keyed import DictKeys
from fairuse.ledger.state import HoursRow, Marks, TenantState


def test_a_field_added_at_the_end_reads_rows_written_before_it() -> None:
    old = orjson.loads(orjson.dumps([1.5, 2, 3.0]))  # an hours row before issue 9's fields
    assert HoursRow.from_list(old) == HoursRow(1.5, 2, 3.0, late=0, announced=0.0)


@given(
    st.dictionaries(
        st.tuples(
            st.sampled_from(["audio_hours", "api_calls"]),
            st.sampled_from(["2026-01", "2026-02-03", "2026-04"]),
        ),
        st.lists(st.sampled_from(Marks.STATUSES), min_size=1, max_size=3, unique=True),
    )
)
def test_marks_round_trip_and_prune_by_month(emitted: dict) -> None:
    marks = Marks(emitted)
    again = Marks.from_list(orjson.loads(orjson.dumps(marks.to_list())))
    assert again == marks
    again.prune("2026-02")
    assert all(period >= "2026-02" for _, period in again.emitted)


def test_an_empty_state_is_a_few_hundred_bytes_and_round_trips() -> None:
    keys = DictKeys()
    state = TenantState.new("acme", keys)
    data = state.to_bytes()
    assert len(data) < 300
    assert TenantState.from_bytes(data, keys) == state
