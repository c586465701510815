"""The embedded chain's state journal: what loads is exactly the last committed save,
through appends, overwrites, deletes, compaction and a torn tail."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.contracts.statefile import MAGIC, StateJournal

keys = st.binary(min_size=1, max_size=4)
ops = st.lists(
    st.lists(st.tuples(st.sampled_from(["put", "del"]), keys, st.binary(max_size=64)), max_size=12),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(batches=ops)
def test_load_returns_the_last_saved_store(batches: list[list[tuple[str, bytes, bytes]]]) -> None:
    path = Path(tempfile.mkdtemp()) / "chain.db"
    journal = StateJournal(path)
    store: dict[bytes, bytes] = {}
    for batch in batches:
        for op, key, value in batch:
            if op == "put":
                store[key] = value
            else:
                store.pop(key, None)
        journal.save(store)
        assert StateJournal(path).load() == store
    # a fresh journal continues appending where the old one stopped
    again = StateJournal(path)
    loaded = again.load()
    loaded[b"new"] = b"value"
    again.save(loaded)
    assert StateJournal(path).load() == loaded


def test_a_torn_append_is_dropped_and_the_file_repaired(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    journal = StateJournal(path)
    journal.save({b"a": b"1"})
    journal.save({b"a": b"2", b"b": b"3"})
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # the second batch's commit record is cut
    assert StateJournal(path).load() == {b"a": b"1"}
    assert path.read_bytes().startswith(MAGIC)
    repaired = StateJournal(path)
    assert repaired.load() == {b"a": b"1"}
    repaired.save({b"a": b"1", b"c": b"4"})
    assert StateJournal(path).load() == {b"a": b"1", b"c": b"4"}


def test_growth_triggers_a_compacting_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    journal = StateJournal(path)
    big = b"x" * 4096
    for i in range(600):  # one key rewritten over and over: the log outgrows the live data
        journal.save({b"k": big + bytes([i % 256])})
    assert path.stat().st_size < 2 * (1 << 20) + 3 * 4200
    assert StateJournal(path).load() == {b"k": big + bytes([599 % 256])}


def test_not_a_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chain.db"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a VeriStream chain state file"):
        StateJournal(path).load()
