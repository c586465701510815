"""Pre-verification: verdict memos never change a verdict, and an epoch pre-verified while open
gives byte-identical results (roots, CIDs, dead letters) to one checked cold at its end."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pipeline_fleet import EPOCH_MS, fleet, honest_epoch, make_job, record
from veristream.committee import InProcessCommittee, RayCommittee
from veristream.connectors.ipfs import EmbeddedStore
from veristream.pipeline.compute import compute_epoch, job_context
from veristream.pipeline.preverify import EpochMemos, Preverifier, decode_by_epoch, preverify
from veristream.pipeline.publish import run_epoch
from veristream.pipeline.reexecute import proposal_for, reexecute
from veristream.pipeline.state import JobState
from veristream.provers.aggregation import demo_members
from veristream.provers.encoding import ZERO_ADDRESS
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import (
    VerdictMemo,
    device_id_from_public_key,
    public_key_of,
    sign_reading,
    verify_many,
)

# SIGNATURE LEVEL: a memo never changes a verdict

DOMAINS = (Domain(chain_id=1), Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20))
SCHEMES = ("secp256k1", "ed25519", "p256")


def _key(scheme: str, n: int) -> tuple[bytes, bytes]:
    sk = (0x5EED_0000 + 97 * SCHEMES.index(scheme) + n).to_bytes(32, "big")
    return sk, public_key_of(scheme, sk)


# two devices per scheme, each with a current key and a rotated one
DEVICES = []
for _scheme in SCHEMES:
    for _n in range(2):
        _sk, _pk = _key(_scheme, _n)
        _sk2, _pk2 = _key(_scheme, 10 + _n)
        DEVICES.append(
            {"scheme": _scheme, "id": device_id_from_public_key(_scheme, _pk), "keys": [(_sk, _pk), (_sk2, _pk2)]}
        )
REGISTRIES = [{d["id"]: d["keys"][r][1] for d in DEVICES} for r in (0, 1)]  # before / after rotation
MUTATIONS = ("none", "flip_signature", "other_device_key", "payload_changed", "rotated_key", "other_domain")


def _reading(device: int, seq: int, mutation: str) -> Reading:
    d = DEVICES[device]
    sk = d["keys"][0][0]
    domain = DOMAINS[0]
    if mutation == "other_device_key":
        sk = DEVICES[device ^ 1]["keys"][0][0]  # the other device of the same scheme
    elif mutation == "rotated_key":
        sk = d["keys"][1][0]
    elif mutation == "other_domain":
        domain = DOMAINS[1]
    payload = json.dumps({"temp": seq}).encode()
    signed = sign_reading(Reading(d["id"], seq, 1_000 + seq, payload, b"", d["scheme"]), domain, sk)
    if mutation == "flip_signature":
        sig = bytearray(signed.signature)
        sig[5] ^= 0x40
        signed = signed._replace(signature=bytes(sig))
    elif mutation == "payload_changed":
        signed = signed._replace(payload=payload + b" ")
    return signed


# a fixed pool of signed readings (signing inside every example would make the test slow)
POOL = [_reading(dev, seq, m) for dev in range(len(DEVICES)) for seq in range(2) for m in MUTATIONS]
VERDICT_SETUPS = st.tuples(st.integers(0, 1), st.integers(0, 1))  # (domain, registry)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    readings=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=24),
    warmups=st.lists(
        st.tuples(st.lists(st.integers(0, len(POOL) - 1), max_size=24), VERDICT_SETUPS), max_size=3
    ),
    final=VERDICT_SETUPS,
    max_entries=st.sampled_from([0, 3, 1000]),
)
def test_memo_never_changes_a_verdict(
    readings: list[int], warmups: list[tuple[list[int], tuple[int, int]]], final: tuple[int, int], max_entries: int
) -> None:
    """Cold, partially warm and warm memos, filled under other domains and rotated registries:
    the verdicts are those of ``verify_many`` without a memo, every time."""
    batch = [POOL[i] for i in readings]
    domain, keys = DOMAINS[final[0]], REGISTRIES[final[1]]
    expected = verify_many(batch, domain, keys)
    memo = VerdictMemo(max_entries)
    assert verify_many(batch, domain, keys, memo=VerdictMemo(max_entries)) == expected  # cold
    for subset, (d, r) in warmups:
        warm = [POOL[i] for i in subset]
        assert verify_many(warm, DOMAINS[d], REGISTRIES[r], memo=memo) == verify_many(
            warm, DOMAINS[d], REGISTRIES[r]
        )
    assert verify_many(batch, domain, keys, memo=memo) == expected  # partially warm
    assert verify_many(batch, domain, keys, memo=memo) == expected  # warm
    assert len(memo) <= max_entries


def test_memo_answers_from_memory_and_keys_on_everything_the_check_depends_on() -> None:
    good = [POOL[MUTATIONS.index("none") + len(MUTATIONS) * k] for k in range(2 * len(DEVICES))]
    memo = VerdictMemo()
    assert all(v.ok for v in verify_many(good, DOMAINS[0], REGISTRIES[0], memo=memo))
    learnt = len(memo)
    assert learnt == len(good)
    # warm: nothing new to learn
    verify_many(good, DOMAINS[0], REGISTRIES[0], memo=memo)
    assert len(memo) == learnt
    # another domain or a rotated registry is another check: new entries, and now failures
    rotated = verify_many(good, DOMAINS[0], REGISTRIES[1], memo=memo)
    assert not any(v.ok for v in rotated) and len(memo) == 2 * learnt
    other = verify_many(good, DOMAINS[1], REGISTRIES[0], memo=memo)
    assert not any(v.ok for v in other) and len(memo) == 3 * learnt


def test_memo_bounds_and_merge() -> None:
    with pytest.raises(ValueError):
        VerdictMemo(-1)
    a, b = VerdictMemo(3), VerdictMemo()
    for n in range(5):
        a.record(bytes([n]) * 32, n % 2 == 0)
        b.record(bytes([n + 10]) * 32, True)
    assert len(a) == 3 and a.lookup(bytes([0]) * 32) is True and a.lookup(bytes([1]) * 32) is False
    assert a.lookup(bytes([4]) * 32) is None  # dropped: the memo was full
    c = VerdictMemo()
    c.merge(a)
    c.merge(b)
    assert len(c) == 8 and c.lookup(bytes([12]) * 32) is True
    a.merge(b)
    assert len(a) == 3
    c.clear()
    assert len(c) == 0


def test_epoch_memos_are_bounded_and_dropped_once_used() -> None:
    memos = EpochMemos(max_epochs=2)
    first = memos.memo(5)
    assert first is not None and memos.memo(5) is first
    assert memos.memo(7) is not None
    assert memos.memo(9) is None  # full, and a later epoch is worth less
    assert memos.memo(6) is not None and memos.epochs() == [5, 6]  # epoch 7 made room
    first.record(b"k" * 32, True)
    assert len(memos) == 1
    assert memos.take(5) is first and memos.take(5) is None
    memos.forget_through(6)
    assert memos.epochs() == [] and memos.memo(6) is None and memos.memo(3) is None
    assert memos.memo(8) is not None
    with pytest.raises(ValueError):
        EpochMemos(max_epochs=0)


# EPOCH LEVEL: byte-identical with and without pre-verification

FLEET = fleet(6)
STRANGER = fleet(1, offset=500)[0]  # signs, but is not registered


def _epoch_records() -> list[tuple[int, bytes]]:
    """One epoch with good readings and every kind of reject, in arrival order."""
    records = honest_epoch(FLEET, 0, per_device=8)
    forged = bytearray(json.loads(records[3][1])["signature"][2:], "ascii")
    forged[10] = ord("0") if forged[10] != ord("0") else ord("1")
    bad_sig = json.loads(records[3][1])
    bad_sig["signature"] = "0x" + forged.decode()
    records += [
        (records[3][0] + 1, json.dumps(bad_sig).encode()),  # bad signature, and a replay of seq 0
        record(FLEET[0], 100, 500, {"temp": 1}, received=520),
        record(FLEET[1], 101, 600, {"temp": 9999}),  # implausible
        record(STRANGER, 1, 700, {"temp": 1}),  # unknown device
        record(FLEET[2], 102, EPOCH_MS + 5, {"temp": 1}, received=800),  # next epoch's timestamp
        records[7],  # duplicate
        (900, b"not an envelope"),
        (901, b'{"device_id": 1}'),
    ]
    return records


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("preverify")
    job = make_job(tmp, FLEET)
    return {"job": job, "ctx": job_context(job), "records": _epoch_records()}


def _artifacts(ctx: Any, records: list[tuple[int, bytes]], store_dir: Path, memo: Any) -> dict[str, Any]:
    outcome = run_epoch(ctx, 0, records, JobState(), EmbeddedStore(store_dir), memo=memo)
    c = outcome.computation
    return {
        "manifest_cid": outcome.manifest_cid,
        "artifacts": outcome.artifacts,
        "data_root": c.data_root,
        "reward_root": c.reward_root,
        "dead": [(d.reason, d.stage, d.raw, d.detail) for d in c.dead],
    }


@pytest.mark.parametrize(
    ("observed", "pool"),
    [("all", False), ("half", False), ("none_of_this_epoch", False), ("all", True), ("half", True)],
)
def test_epoch_is_byte_identical_with_pre_verification(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, observed: str, pool: bool
) -> None:
    """In-process, and on the worker pool (whose processes get a copy of the memo)."""
    from veristream.pipeline import workers

    ctx, records = setup["ctx"], setup["records"]
    if pool:
        monkeypatch.setattr(workers, "MIN_READINGS_FOR_POOL", 0)
        assert workers.auto_workers(len(records), ctx.job.beam.verify_workers) == min(2, os.cpu_count() or 1)
    cold = _artifacts(ctx, records, tmp_path / "cold", None)
    preverifier = Preverifier(ctx)
    raws = [raw for _, raw in records]
    if observed == "all":
        preverifier.observe(raws)
    elif observed == "half":
        preverifier.observe(raws[::2])
    else:
        preverifier.observe([raws[-4]])  # only a reading stamped in the next epoch
    memo = preverifier.take(0)
    if observed == "none_of_this_epoch":
        assert memo is None
    else:
        assert memo is not None and len(memo) > 0
    warm = _artifacts(ctx, records, tmp_path / "warm", memo)
    assert warm == cold
    assert cold["dead"] and {d[0] for d in cold["dead"]} >= {"bad_signature", "unknown_device", "malformed"}
    if pool:
        workers.shutdown()
    if observed == "all":
        # every signature check was answered by the memo: it learnt nothing new at epoch end
        assert memo is not None
        learnt = len(memo)
        compute_epoch(ctx, 0, records, JobState(), memo=memo)
        assert len(memo) == learnt
    # the epoch's memo is gone from the pre-verifier, and later readings of it are not kept
    assert 0 not in preverifier.memos.epochs()
    preverifier.observe(raws[:3])
    assert 0 not in preverifier.memos.epochs()


def test_pool_and_in_process_pre_verification_agree(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, records = setup["ctx"], setup["records"]
    raws = [raw for _, raw in records]
    here = Preverifier(ctx)
    here.observe(raws)
    pooled = Preverifier(ctx)
    monkeypatch.setattr(Preverifier, "_pool_workers", lambda self, readings: 2)
    monkeypatch.setattr("veristream.pipeline.preverify.POOL_CHUNK", 7)
    try:
        pooled.observe(raws)
    finally:
        from veristream.pipeline import workers

        workers.shutdown()
    a, b = here.take(0), pooled.take(0)
    assert a is not None and b is not None and len(a) == len(b) > 0
    verify_many(decode_by_epoch(raws, ctx.clock, 256)[0], ctx.domain, ctx.registry.keys(), memo=b)
    assert len(b) == len(a)  # the pool's memo already knew every check


def test_operators_pre_verify_and_sign_the_same(setup: dict[str, Any], tmp_path: Path) -> None:
    job, ctx, records = setup["job"], setup["ctx"], setup["records"]
    store = EmbeddedStore(Path(job.work_dir) / "ipfs")
    outcome = run_epoch(ctx, 0, records, JobState(), store)
    proposal = proposal_for(outcome.manifest, outcome.manifest_cid, 31337, "0x" + "11" * 20, ZERO_ADDRESS)
    # an operator's re-execution from the batch: same result with its memo, and every check a hit
    batch = outcome.artifacts["batch"]
    memos = EpochMemos()
    preverify(memos, decode_by_epoch([raw for _, raw in records], ctx.clock, 256), ctx.domain, ctx.registry.keys())
    memo = memos.take(0)
    assert memo is not None
    learnt = len(memo)
    assert reexecute(ctx, 0, batch, JobState(), memo) == reexecute(ctx, 0, batch, JobState())
    assert len(memo) == learnt
    members = demo_members("bls12381", 4)
    cold = InProcessCommittee(job, members, ctx.registry).sign(proposal)
    committee = InProcessCommittee(job, members, ctx.registry, faults={2: "wrong_root"})
    committee.stop_operator(3)
    preverifier = Preverifier(ctx, committee.observe)
    preverifier.observe([raw for _, raw in records])
    operator = committee._operators[0]
    assert operator._memos.epochs() == [0, 1]
    assert committee._operators[3]._memos.epochs() == []  # down: skipped
    committee._down.clear()  # back up, cold: it checks everything at review
    warm = committee.sign(proposal)
    assert warm.quorum_met and warm.signers == (0, 1, 3) and "data root mismatch" in warm.refusals[2]
    assert cold.signers == (0, 1, 2, 3) and warm.digest == cold.digest
    assert operator._memos.epochs() == [1]  # epoch 0's memo was used, and it is done
    # readings of epoch 0 are not kept again: only the one stamped in epoch 1 is checked
    assert operator.observe([raw for _, raw in records]) == 1



@pytest.mark.slow
def test_ray_operators_pre_verify_fire_and_forget(setup: dict[str, Any], ray_session: None) -> None:
    job, ctx, records = setup["job"], setup["ctx"], setup["records"]
    store = EmbeddedStore(Path(job.work_dir) / "ipfs")
    outcome = run_epoch(ctx, 0, records, JobState(), store)
    proposal = proposal_for(outcome.manifest, outcome.manifest_cid, 31337, "0x" + "11" * 20, ZERO_ADDRESS)
    committee = RayCommittee(job, demo_members("bls12381", 4), ctx.registry)
    try:
        committee.stop_operator(1)
        Preverifier(ctx, committee.observe).observe([raw for _, raw in records])  # returns without waiting
        committee.drain(60)
        aggregate = committee.sign(proposal)
        assert aggregate.quorum_met and aggregate.signers == (0, 2, 3) and aggregate.down == (1,)
    finally:
        committee.close()


def test_operators_batch_decode_names_a_tampered_row(setup: dict[str, Any]) -> None:
    """The batch decode at the start of every re-execution (whole-column checks) still names
    the row whose derived columns do not match."""
    import pyarrow as pa

    from veristream.pipeline.batch import (
        accepted_table,
        decode_accepted,
        sort_accepted,
        write_parquet,
    )

    computation = compute_epoch(setup["ctx"], 0, setup["records"], JobState())
    table = accepted_table(sort_accepted(computation.accepted))
    decoded = decode_accepted(write_parquet(table))
    assert [c[2:8] for c in decoded] == [c[2:8] for c in sort_accepted(computation.accepted)]
    assert [c.arrival for c in decoded] == list(range(len(decoded))) and {c.raw for c in decoded} == {b""}
    for column, row in (("payload_hash", 3), ("device", 5)):
        values = table.column(column).to_pylist()
        values[row] = bytes(len(values[row]))
        index = table.schema.get_field_index(column)
        tampered = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
        with pytest.raises(ValueError, match=f"batch row {row}: "):
            decode_accepted(write_parquet(tampered))


def _worker_memo_size() -> int:
    from veristream.pipeline import workers

    assert workers._CONFIG is not None
    return len(workers._CONFIG[4])


def test_worker_pool_processes_hold_the_epochs_memo(setup: dict[str, Any]) -> None:
    from veristream.pipeline import workers

    ctx, records = setup["ctx"], setup["records"]
    preverifier = Preverifier(ctx)
    preverifier.observe([raw for _, raw in records])
    memo = preverifier.take(0)
    assert memo is not None
    args = (ctx.domain, ctx.registry.keys(), dict(ctx.registry.devices), 5000)
    try:
        pool = workers.pool_for(2, *args, memo)
        assert {pool.submit(_worker_memo_size).result() for _ in range(4)} == {len(memo)}
        assert workers.pool_for(2, *args, memo) is pool  # same memo: same pool
        assert workers.pool_for(2, *args) is not pool  # a pool without it is another one
    finally:
        workers.shutdown()
