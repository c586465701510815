"""One epoch through the Beam pipeline: every fault lands in the dead letters with its reason,
accepted + rejected == in, results do not depend on input order or bundling, batches are
byte-identical on a re-run, and re-execution from the batch reproduces the roots."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.pipeline_fleet import EPOCH_MS, fleet, honest_epoch, make_job, reading, record
from veristream.connectors.envelope import encode_reading
from veristream.connectors.ipfs import EmbeddedStore
from veristream.pipeline import commitments
from veristream.pipeline.batch import decode_accepted, decode_dead_letters, encode_accepted
from veristream.pipeline.compute import compute_epoch, job_context
from veristream.pipeline.manifest import manifest_from_json
from veristream.pipeline.publish import run_epoch
from veristream.pipeline.reexecute import reexecute
from veristream.pipeline.state import Checkpoint, JobState, commit_checkpoint, load_checkpoint
from veristream.provers.encoding import keccak256
from veristream.provers.merkle import StandardMerkleTree, verify_proof
from veristream.provers.readings import Reading

DEVICES = fleet(6)
OUTSIDER = fleet(1, offset=1000)[0]


def _faulty_epoch() -> tuple[list[tuple[int, bytes]], dict[str, int]]:
    """An epoch of honest readings plus one of each fault; returns records and expected rejects."""
    records = honest_epoch(DEVICES[:5], 0, per_device=8)
    d0, d1, d2, d3, d4, revoked = DEVICES
    expected: dict[str, int] = {}

    def add(rec: tuple[int, bytes], reason: str) -> None:
        records.append(rec)
        expected[reason] = expected.get(reason, 0) + 1

    good = reading(d0, 100, 5_000, {"temp": 1})
    records.append((5_010, encode_reading(good)))
    add((5_020, encode_reading(good)), "duplicate")  # byte-identical resend
    add(record(d0, 100, 5_500, {"temp": 2}), "replay")  # same seq, new content
    forged = Reading(d1.device_id, 200, 6_000, b'{"temp":3}', good.signature)
    add((6_010, encode_reading(forged)), "bad_signature")
    add(record(OUTSIDER, 1, 6_100, {"temp": 3}), "unknown_device")
    add(record(d2, 300, 7_000, {"temp": 9_999}), "implausible")
    add(record(d2, 301, 7_100, {"hum": 5}), "implausible")  # required temp missing
    add(record(d2, 302, 7_200, b"not json"), "malformed")
    add(record(d3, 400, 50_000, {"temp": 1}, received=40_000), "clock_skew")
    add(record(d4, 500, 8_000, {"temp": 1, "pad": "x" * 300}), "oversized")
    add(record(revoked, 1, 30_000, {"temp": 1}), "revoked")
    records.append(record(revoked, 0, 10_000, {"temp": 1}))  # before its revocation: accepted
    add(record(d1, 900, 70_000, {"temp": 1}), "wrong_epoch")
    add((9_000, b'{"device_id": "0x12"'), "malformed")
    return records, expected


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("job")
    return make_job(tmp, DEVICES, revoked={DEVICES[5].device_id: 20_000})


def test_every_fault_is_a_dead_letter_with_its_reason(job) -> None:  # type: ignore[no-untyped-def]
    records, expected = _faulty_epoch()
    c = compute_epoch(job_context(job), 0, records, JobState())
    assert c.rejected == dict(sorted(expected.items()))
    assert len(c.accepted) + len(c.dead) == len(records) == c.readings_in
    assert len(c.accepted) == 5 * 8 + 2
    # the state advanced to the highest accepted seq per device
    assert c.state.high_water[DEVICES[0].device_id] == 100
    assert c.state.high_water[DEVICES[5].device_id] == 0
    # rewards: the budget is split exactly, capped at 400k per device
    assert c.rewards.paid + c.rewards.remainder == 1_000_000
    assert max(c.rewards.shares.values()) <= 400_000


def test_order_and_bundling_do_not_matter(job) -> None:  # type: ignore[no-untyped-def]
    records, _ = _faulty_epoch()
    ctx = job_context(job)
    a = compute_epoch(ctx, 0, records, JobState())
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    small = job.model_copy(update={"beam": job.beam.model_copy(update={"readings_per_element": 7})})
    b = compute_epoch(job_context(small, ctx.registry), 0, shuffled, JobState())
    assert (a.data_root, a.reward_root) == (b.data_root, b.reward_root)
    assert a.state == b.state
    assert encode_accepted(a.accepted) == encode_accepted(b.accepted)
    assert a.rejected == b.rejected


def test_roots_match_an_independent_tree_and_proofs_verify(job) -> None:  # type: ignore[no-untyped-def]
    records = honest_epoch(DEVICES[:3], 0, per_device=4)
    c = compute_epoch(job_context(job), 0, records, JobState())
    ordered = sorted(c.accepted, key=lambda x: (x.device_id, x.seq))
    values = [[x.device_id, x.seq, x.timestamp_ms, "0x" + keccak256(x.payload).hex()] for x in ordered]
    tree = StandardMerkleTree.of(values, ["address", "uint64", "uint64", "bytes32"])
    assert tree.root == "0x" + c.data_root.hex()
    assert verify_proof(tree.root, tree.leaf_encoding, values[3], tree.get_proof(3))
    account = next(iter(c.state.cumulative))
    amount, proof = commitments.reward_proof(c.state.cumulative, account)
    assert verify_proof("0x" + c.reward_root.hex(), ["address", "uint256"], ["0x" + account.hex(), amount], ["0x" + p.hex() for p in proof])


def test_replay_across_epochs_and_cumulative_rewards(job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EmbeddedStore(tmp_path / "ipfs")
    ctx = job_context(job)
    e0 = run_epoch(ctx, 0, honest_epoch(DEVICES[:2], 0, per_device=5), JobState(), store)
    replayed = [record(DEVICES[0], 3, EPOCH_MS + 5, {"temp": 1})]  # seq 3 was accepted in epoch 0
    fresh = honest_epoch(DEVICES[:2], 1, per_device=2, seq_start=5)
    e1 = run_epoch(ctx, 1, replayed + fresh, e0.state, store)
    assert e1.manifest.rejected == {"replay": 1}
    assert e1.manifest.prev_manifest_cid == e0.manifest_cid
    total = sum(e1.state.cumulative.values()) + e1.state.carry
    assert total == 2 * 1_000_000  # cumulative totals plus carried dust add up to every budget
    # the manifest is canonical JSON on the store and links every artefact
    m = manifest_from_json(store.get(e1.manifest_cid))
    assert m == e1.manifest
    assert [r.reason for r in decode_dead_letters(store.get(m.dead_letter_cid))] == ["replay"]
    assert len(decode_accepted(store.get(m.batch_cid))) == 4


def test_rerun_is_byte_identical_and_recovers_from_checkpoint(job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records, _ = _faulty_epoch()
    ctx = job_context(job)
    first = run_epoch(ctx, 0, records, JobState(), EmbeddedStore(tmp_path / "a"))
    again = run_epoch(ctx, 0, list(reversed(records)), JobState(), EmbeddedStore(tmp_path / "b"))
    assert first.artifacts == again.artifacts
    assert first.manifest_cid == again.manifest_cid
    commit_checkpoint(tmp_path / "work", Checkpoint(first.state, first.manifest, first.manifest_cid))
    loaded = load_checkpoint(tmp_path / "work")
    assert loaded.state == first.state and loaded.manifest == first.manifest


def test_reexecution_from_the_batch_and_tampering(job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records, _ = _faulty_epoch()
    ctx = job_context(job)
    out = run_epoch(ctx, 0, records, JobState(), EmbeddedStore(tmp_path / "s"))
    batch = out.artifacts["batch"]
    again = reexecute(ctx, 0, batch, JobState())
    assert again.clean
    assert (again.data_root, again.reward_root) == (out.computation.data_root, out.computation.reward_root)
    # a coordinator that slips a forged reading into the batch is caught
    forged = decode_accepted(batch)
    bad = forged[0]._replace(payload=b'{"temp":499}')
    tampered = encode_accepted([bad, *forged[1:]])
    result = reexecute(ctx, 0, tampered, JobState())
    assert not result.clean and "bad_signature" in result.problems[0]
    assert result.data_root != out.computation.data_root
    with pytest.raises(ValueError):
        reexecute(ctx, 0, b"not parquet", JobState())


def test_state_must_move_forward(job) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="already at epoch"):
        compute_epoch(job_context(job), 0, [], JobState(epoch=0))


def test_empty_epoch_has_zero_roots_and_moves_no_money(job) -> None:  # type: ignore[no-untyped-def]
    before = JobState(carry=123)
    c = compute_epoch(job_context(job), 3, [], before)
    assert c.data_root == commitments.ZERO_ROOT == c.reward_root
    # no budget taken, no remainder moved: the carry passes through untouched
    assert c.rewards.budget == 0 and c.state.carry == 123


def test_payload_json_is_not_trusted_for_types(job) -> None:  # type: ignore[no-untyped-def]
    d = DEVICES[0]
    recs = [
        record(d, 0, 1_000, {"temp": True}),
        record(d, 1, 1_100, {"temp": 1.5}),
        record(d, 2, 1_200, [1, 2]),  # type: ignore[arg-type]
    ]
    c = compute_epoch(job_context(job), 0, recs, JobState())
    assert c.rejected == {"implausible": 2, "malformed": 1}


def test_signature_checks_on_a_process_pool_give_the_same_epoch(job, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from veristream.pipeline import workers

    monkeypatch.setattr(workers, "MIN_READINGS_FOR_POOL", 1)
    records, _ = _faulty_epoch()
    inline = compute_epoch(job_context(job), 0, records, JobState())
    pooled_job = job.model_copy(update={"beam": job.beam.model_copy(update={"verify_workers": 2, "readings_per_element": 9})})
    try:
        pooled = compute_epoch(job_context(pooled_job), 0, records, JobState())
    finally:
        workers.shutdown()
    assert (pooled.data_root, pooled.reward_root, pooled.rejected) == (inline.data_root, inline.reward_root, inline.rejected)
    assert pooled.dead == inline.dead
