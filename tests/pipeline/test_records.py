"""The hot path's shortcuts on records change nothing: sort key, batch pickling, verdict split."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.pipeline.checks import split_by_problems
from veristream.pipeline.records import (
    CANDIDATE_ORDER,
    Candidate,
    CandidateBatch,
    rejected_from,
)
from veristream.provers.reasons import Stage

_CANDIDATES = st.builds(
    Candidate,
    st.integers(min_value=0, max_value=10**13),
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(["0x" + "a" * 40, "0x" + "b" * 40]),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=10**13),
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(["secp256k1", "p256"]),
    st.binary(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CANDIDATES, max_size=20))
def test_sort_key_and_batch_pickling_are_exact(candidates: list[Candidate]) -> None:
    assert [CANDIDATE_ORDER(c) for c in candidates] == [c.order_key() for c in candidates]
    assert sorted(candidates, key=CANDIDATE_ORDER) == sorted(candidates, key=Candidate.order_key)
    back = pickle.loads(pickle.dumps(CandidateBatch(candidates), protocol=5))
    assert type(back) is CandidateBatch
    assert back == candidates
    assert all(type(c) is Candidate for c in back)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CANDIDATES, max_size=20), st.data())
def test_split_by_problems_keeps_batch_order(candidates: list[Candidate], data: st.DataObject) -> None:
    failing = sorted(data.draw(st.sets(st.integers(0, max(len(candidates) - 1, 0)))) if candidates else [])
    problems = [(i, "bad_signature", f"d{i}") for i in failing]
    good, bad = split_by_problems(candidates, problems)
    assert good == [c for i, c in enumerate(candidates) if i not in set(failing)]
    assert bad == [
        rejected_from(candidates[i], "bad_signature", Stage.SIGNATURE, f"d{i}") for i in failing
    ]
