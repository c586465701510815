"""The epoch manifest's JSON: canonical, round-tripping, and read strictly (version 2: the
aggregates root and the three trees' dump CIDs are not optional)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from veristream.pipeline.manifest import (
    MANIFEST_VERSION,
    Manifest,
    RewardSummary,
    TreeDumps,
    manifest_from_json,
)
from veristream.provers.errors import InputRejected

MANIFEST = Manifest(
    job_id="job",
    epoch=3,
    start_ms=0,
    end_ms=1000,
    batch_cid="bafkreibatch",
    dead_letter_cid="bafkreidead",
    aggregates_cid="bafkreiaggregates",
    state_cid="bafkreistate",
    prev_manifest_cid=None,
    data_root="0x" + "11" * 32,
    aggregates_root="0x" + "22" * 32,
    reward_root="0x" + "33" * 32,
    readings_in=5,
    accepted=4,
    rejected={"replay": 1},
    rewards=RewardSummary(100, 90, 10, 10, 0, 2),
    trees=TreeDumps(data="bafkreidata", aggregates="bafkreiagg", rewards=None),
)


def test_a_manifest_round_trips_as_canonical_json() -> None:
    data = MANIFEST.to_json()
    raw = json.loads(data)
    assert raw["version"] == MANIFEST_VERSION == 2
    assert raw["trees"] == {"data": "bafkreidata", "aggregates": "bafkreiagg", "rewards": None}
    assert raw["aggregates_root"] == "0x" + "22" * 32 and "device_registry_block" not in raw
    assert data == json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    assert manifest_from_json(data) == MANIFEST


def _edited(**changes: Any) -> bytes:
    raw = json.loads(MANIFEST.to_json())
    for key, value in changes.items():
        if value is ...:
            del raw[key]
        else:
            raw[key] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 1}, "unsupported manifest version 1"),
        ({"trees": ...}, "fields do not match"),
        ({"aggregates_root": ...}, "fields do not match"),
        ({"trees": {"data": None, "aggregates": None}}, "fields do not match"),
        ({"trees": {"data": None, "aggregates": None, "rewards": None, "extra": "x"}}, "fields do not match"),
        ({"trees": {"data": 7, "aggregates": None, "rewards": None}}, "CIDs or null"),
        ({"trees": ["bafkreidata"]}, "must be an object"),
    ],
)
def test_a_manifest_is_read_strictly(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputRejected, match=message):
        manifest_from_json(_edited(**changes))
