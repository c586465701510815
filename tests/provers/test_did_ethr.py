"""did:ethr identifiers and the fold of ERC-1056 events into a DID document, cross-checked with
ethr-did-resolver's own fold (``wrapDidDocument``) over random histories."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from veristream.provers.did_ethr import (
    ATTRIBUTE_CHANGED,
    DELEGATE_CHANGED,
    NO_EXPIRY,
    OWNER_CHANGED,
    DidEvent,
    device_did,
    did_document,
    multikey_bytes,
    parse_did,
    previous_block,
)
from veristream.provers.errors import InputRejected
from veristream.provers.multibase import base58btc_decode

SCRIPT = REPO / "tests" / "js" / "ethr_did_reference.mjs"
CHAIN_ID = 31337
DEVICE = bytes.fromhex("d0" * 20)
DID = device_did(CHAIN_ID, DEVICE)


def test_device_dids_name_the_chain_and_the_address() -> None:
    assert DID == "did:ethr:0x7a69:0x" + "d0" * 20
    parsed = parse_did(DID)
    assert (parsed.chain_id, parsed.address, parsed.text) == (CHAIN_ID, DEVICE, DID)
    assert parse_did("did:ethr:0x" + "AB" * 20).chain_id == 1  # no network: mainnet
    for bad in (
        "did:key:z6Mk",
        "did:ethr:sepolia:0x" + "ab" * 20,  # network names are not resolved here
        "did:ethr:0x7a69:0x" + "ab" * 19,
        "did:ethr:0x7a69:0x02" + "ab" * 32,  # the public-key form
        DID + "#delegate-1",
        "did:ethr:0x0:0x" + "ab" * 20,
    ):
        with pytest.raises(InputRejected):
            parse_did(bad)


def _attribute(block: int, name: str, value: bytes, valid_to: int, index: int = 0) -> DidEvent:
    return DidEvent(ATTRIBUTE_CHANGED, block, index, 0, name=name, value=value, valid_to=valid_to)


def test_a_rotation_expires_the_old_key_and_numbers_the_new_one_after_it() -> None:
    old, new = b"\x02" + b"\x11" * 32, b"\x03" + b"\x22" * 32
    name = "did/pub/Secp256k1/veriKey/hex"
    events = [
        DidEvent(OWNER_CHANGED, 10, 0, 0, owner=b"\xbe" * 20),
        _attribute(10, name, old, NO_EXPIRY, 1),
        _attribute(20, name, old, 1_999, 0),
        _attribute(20, name, new, NO_EXPIRY, 1),
    ]
    did = parse_did(DID)
    before = did_document(did, events, block=15, now=1_500)
    assert before.version_id == 10 and before.next_version_id == 20
    [controller, method] = before.document["verificationMethod"]
    assert method["id"] == DID + "#delegate-1" and multikey_bytes(method) == (0xE7, old)
    # the identity owner signs only by ecrecover: the account named here, never a key
    assert controller == {
        "id": DID + "#controller",
        "type": "EcdsaSecp256k1RecoveryMethod2020",
        "controller": DID,
        "blockchainAccountId": f"eip155:{CHAIN_ID}:0x" + "be" * 20,
    }
    assert before.document["assertionMethod"] == [DID + "#controller", DID + "#delegate-1"]
    assert before.document["authentication"] == [DID + "#controller"]
    assert "controller" not in before.document
    after = did_document(did, events, block=20, now=2_000)
    [_, method] = after.document["verificationMethod"]
    assert method["id"] == DID + "#delegate-3" and multikey_bytes(method) == (0xE7, new)
    # at block 20 but a second earlier, the old key is still valid (through 1999): both listed
    both = did_document(did, events, block=20, now=1_999)
    assert [multikey_bytes(m)[1] for m in both.document["verificationMethod"][1:]] == [old, new]
    assert both.document["verificationMethod"][1]["expires"] == "1970-01-01T00:33:20Z"


def test_previous_block_follows_the_earliest_link_below() -> None:
    events = [DidEvent(OWNER_CHANGED, 30, 0, 12, owner=DEVICE), DidEvent(OWNER_CHANGED, 30, 1, 30, owner=DEVICE)]
    assert previous_block(events, 30) == 12
    assert previous_block([DidEvent(OWNER_CHANGED, 5, 0, 0, owner=DEVICE)], 5) == 0


# CROSS-CHECK WITH ethr-did-resolver's FOLD


NAMES = [
    ("did/pub/Secp256k1/veriKey/hex", 33),
    ("did/pub/Ed25519/veriKey/base58", 32),
    ("did/pub/P256/veriKey/hex", 33),
    ("did/pub/X25519/enc/base58", 32),
    ("did/pub/Ed25519/sigAuth/base58", 32),
    ("did/svc/MessagingService", 0),
]


def _random_history(rng: random.Random) -> tuple[list[DidEvent], int, int]:
    """A history of repeated keys, services, delegates and owner changes, with validTo around now."""
    now = 1_000
    values = {name: [rng.randbytes(length) if length else b'"https://d.example/%d"' % i for i in range(2)]
              for name, length in NAMES}
    delegates = [rng.randbytes(20) for _ in range(2)]
    events: list[DidEvent] = []
    block = 1
    for _ in range(rng.randint(1, 12)):
        block += rng.randint(0, 2)
        valid_to = rng.choice([0, now - 1, now, now + 1, NO_EXPIRY])
        roll = rng.random()
        if roll < 0.1:
            owner = rng.choice([rng.randbytes(20), DEVICE] + ([bytes(20)] if rng.random() < 0.2 else []))
            events.append(DidEvent(OWNER_CHANGED, block, len(events), 0, owner=owner))
        elif roll < 0.3:
            delegate_type = rng.choice(["veriKey", "sigAuth"])
            events.append(DidEvent(DELEGATE_CHANGED, block, len(events), 0, name=delegate_type,
                                   delegate=rng.choice(delegates), valid_to=valid_to))
        else:
            name, _ = rng.choice(NAMES)
            events.append(_attribute(block, name, rng.choice(values[name]), valid_to, len(events)))
    return events, rng.randint(1, block + 1), now


def _reference_event(event: DidEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"_eventName": event.kind, "blockNumber": event.block, "identity": "0x" + DEVICE.hex()}
    if event.kind == OWNER_CHANGED:
        assert event.owner is not None
        return {**out, "owner": "0x" + event.owner.hex()}
    out["validTo"] = str(event.valid_to)
    if event.kind == DELEGATE_CHANGED:
        assert event.delegate is not None
        return {**out, "delegateType": event.name, "delegate": "0x" + event.delegate.hex()}
    assert event.value is not None
    return {**out, "name": event.name, "value": "0x" + event.value.hex()}


def _reference_key(method: dict[str, Any]) -> tuple[str, str]:
    """(id, key) of a reference verification method: hex of its key, or its account."""
    if "blockchainAccountId" in method:
        return method["id"], method["blockchainAccountId"].lower()
    if "publicKeyHex" in method:
        return method["id"], method["publicKeyHex"]
    return method["id"], base58btc_decode(method["publicKeyBase58"]).hex()


def _our_key(method: dict[str, Any]) -> tuple[str, str]:
    if "blockchainAccountId" in method:
        return method["id"], method["blockchainAccountId"].lower()
    return method["id"], multikey_bytes(method)[1].hex()


def test_the_fold_matches_ethr_did_resolver_on_random_histories(node: str, tmp_path: Path) -> None:
    rng = random.Random(1056)
    cases = [_random_history(rng) for _ in range(300)]
    did = parse_did(DID)
    request = {
        "chainId": CHAIN_ID,
        "cases": [
            {"did": DID, "address": "0x" + DEVICE.hex(), "now": now, "blockHeight": height,
             "history": [_reference_event(e) for e in events]}
            for events, height, now in cases
        ],
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run([node, str(SCRIPT), "wrap", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    references = json.loads(done.stdout)
    assert len(references) == len(cases)
    dangling = 0
    for (events, height, now), reference in zip(cases, references, strict=True):
        ours = did_document(did, events, block=height, now=now)
        expected = reference["didDocument"]
        assert ours.deactivated == reference["deactivated"]
        assert ours.version_id == reference["versionId"]
        if ours.deactivated:
            continue
        theirs = expected["verificationMethod"]
        assert [_our_key(m) for m in ours.document["verificationMethod"]] == [
            _reference_key(m) for m in theirs
        ], events
        # ethr-did-resolver 11 never drops a keyAgreement reference when its X25519 key expires or
        # is revoked (its fold deletes the method, not the reference): those dangle, naming no
        # method of its own document; this document drops them with the method
        listed = {m["id"] for m in theirs}
        for relationship in ("assertionMethod", "authentication", "keyAgreement"):
            reference_refs = expected.get(relationship, [])
            assert ours.document.get(relationship, []) == [r for r in reference_refs if r in listed], events
            unlisted = [r for r in reference_refs if r not in listed]
            assert relationship == "keyAgreement" or not unlisted, (relationship, events)
            dangling += len(unlisted)
        assert [(s["id"], s["type"], s["serviceEndpoint"]) for s in ours.document.get("service", [])] == [
            (s["id"], s["type"], s["serviceEndpoint"]) for s in expected.get("service", [])
        ]
    # the histories did revoke and expire key-agreement keys
    assert dangling > 0
