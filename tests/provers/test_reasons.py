"""One vocabulary of reject reasons: every part and the docs speak it."""

from __future__ import annotations

import json
import pickle

import pytest

from tests.conftest import REPO
from veristream.provers.reasons import (
    INGEST_REASONS,
    PIPELINE_STAGES,
    Reason,
    SignatureFault,
    Stage,
)


def test_every_reason_has_a_meaning_and_is_documented() -> None:
    guide = (REPO / "docs" / "ingest.md").read_text()
    for reason in Reason:
        assert reason.meaning and reason.meaning[0].islower()
        assert f"`{reason.value}`" in guide, reason


def test_members_are_their_values_on_the_wire() -> None:
    assert json.dumps({Reason.REVOKED: Stage.SIGNATURE}) == '{"revoked": "signature"}'
    assert f"{Reason.CLOCK_SKEW}" == "clock_skew"
    assert pickle.loads(pickle.dumps(Reason.LATE)) is Reason.LATE
    assert Reason("replay") is Reason.REPLAY
    assert set(Reason) > INGEST_REASONS
    assert PIPELINE_STAGES == (Stage.DECODE, Stage.SIGNATURE, Stage.REPLAY, Stage.PLAUSIBILITY)


@pytest.mark.parametrize("fault", list(SignatureFault))
def test_each_signature_fault_is_filed_under_one_reason(fault: SignatureFault) -> None:
    reason = Reason.of_signature_fault(fault)
    expected = {
        SignatureFault.UNKNOWN_DEVICE: Reason.UNKNOWN_DEVICE,
        SignatureFault.MALFORMED_READING: Reason.MALFORMED,
    }.get(fault, Reason.BAD_SIGNATURE)
    assert reason is expected
