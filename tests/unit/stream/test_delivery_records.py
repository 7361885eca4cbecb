"""The batch step's record encoding matches what Faust and aiokafka would write."""

from __future__ import annotations

from faust.serializers import codecs
from hypothesis import given
from hypothesis import strategies as st

from fairuse.stream.delivery import changelog_key


@given(st.text())
def test_changelog_keys_are_faust_table_keys(key: str) -> None:
    # Faust recovers the changelog with its json codec: the keys must be byte for byte its own.
    assert changelog_key(key) == codecs.dumps("json", key)
