"""Device DIDs on anvil: the pipeline's device view, VeriStream's DID document and
ethr-did-resolver's document agree on the key in force, across a rotation and revocations.

One DeviceRegistry on anvil, its blocks stamped at chosen times (an hour before now):

- t0+100..103  four devices registered: secp256k1 (full key), ed25519, p256, and a secp256k1
               device known by its address only; the ed25519 device's owner publishes an X25519
               key-agreement key at t0+110
- t0+1000      the secp256k1 device's key rotated
- t0+2100      the p256 device revoked from t0+2000 (a past time)
- t0+2500      the ed25519 device revoked from t0+3000 (a future time)

At each sampled time t (a block's timestamp), as of the last block stamped at or before t: the
key the pipeline's view (``ChainDevices``, as the run reads the registry) holds in force for a
reading stamped t, the signing key of ``veristream did resolve --at t``, and the signing key of
ethr-did-resolver's document at ``?versionId=<that block>`` are the same key (or all none).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner

from tests.conftest import REPO, free_port
from veristream.cli import app
from veristream.contracts import connect
from veristream.contracts.anvil import anvil
from veristream.contracts.chain import Chain
from veristream.contracts.deploy import Deployment, deploy
from veristream.contracts.device_registry import (
    register_device,
    registry_deployment,
    revoke_device,
    rotate_device_key,
    set_did_attribute,
)
from veristream.devices import ChainRegistryReader
from veristream.pipeline.device_view import ChainDevices
from veristream.provers.did_ethr import device_did, multikey_bytes
from veristream.provers.encoding import keccak256
from veristream.provers.multibase import base58btc_decode
from veristream.provers.signing import device_id_from_public_key, public_key_of

SCRIPT = REPO / "tests" / "js" / "ethr_did_reference.mjs"
CHAIN_ID = 31337
runner = CliRunner()


def _secret(label: str) -> bytes:
    return keccak256(f"test_device_dids/{label}".encode())


SECP_OLD, SECP_NEW, ED, P256, ADDR = (_secret(n) for n in ("secp-old", "secp-new", "ed", "p256", "addr"))
SECP_DEVICE = Account.from_key(SECP_OLD).address.lower()
ADDR_DEVICE = Account.from_key(ADDR).address.lower()
ED_DEVICE = device_id_from_public_key("ed25519", public_key_of("ed25519", ED))
P256_DEVICE = device_id_from_public_key("p256", public_key_of("p256", P256))
X25519_KEY = bytes(range(32))
DEVICES = (SECP_DEVICE, ED_DEVICE, P256_DEVICE, ADDR_DEVICE)
# seconds after t0 sampled, each a block's timestamp
SAMPLES = (99, 100, 105, 999, 1000, 1001, 1999, 2000, 2099, 2100, 2499, 2500, 2999, 3000, 3500)


def _compressed(xy: bytes) -> bytes:
    """SEC1 compressed form of a 64-byte x||y point."""
    return bytes([2 + (xy[63] & 1)]) + xy[:32]


def _comparable(device: str, scheme: str, key: bytes) -> str:
    """A device key as the three sides can all state it: the compressed point, the Ed25519
    point, or the address of a secp256k1 device registered without its key."""
    if scheme == "secp256k1" and not key:
        return "address:" + device.lower()
    return (_compressed(key) if scheme in ("secp256k1", "p256") else key).hex()


@dataclass(frozen=True, slots=True)
class History:
    url: str
    registry: str
    t0: int
    blocks: dict[int, int]  # sampled offset -> the block stamped then
    dep: Deployment
    beneficiary: str


def _stamp(chain: Chain, when: int) -> None:
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [when])


def _mine(chain: Chain, when: int) -> int:
    _stamp(chain, when)
    chain.w3.provider.make_request("evm_mine", [])
    return int(chain.w3.eth.block_number)


@pytest.fixture(scope="module")
def history() -> Iterator[History]:
    t0 = int(time.time()) - 3_600 - 3_600
    with anvil(free_port(), extra_args=("--timestamp", str(t0))) as node:
        chain = connect(node.url)
        try:
            owner = chain.w3.eth.accounts[1]
            _stamp(chain, t0 + 10)
            dep = registry_deployment(chain, deploy(chain, "DeviceRegistry", chain.sender))
            blocks = {99: _mine(chain, t0 + 99)}
            keys = {
                SECP_DEVICE: ("secp256k1", public_key_of("secp256k1", SECP_OLD)),
                ED_DEVICE: ("ed25519", public_key_of("ed25519", ED)),
                P256_DEVICE: ("p256", public_key_of("p256", P256)),
                ADDR_DEVICE: ("secp256k1", b""),
            }
            for offset, (device, (scheme, key)) in enumerate(keys.items()):
                _stamp(chain, t0 + 100 + offset)
                register_device(chain, dep, device, owner, scheme, key)
            blocks[100] = int(chain.w3.eth.block_number) - 3
            blocks[105] = _mine(chain, t0 + 105)
            _stamp(chain, t0 + 110)
            set_did_attribute(chain, dep, ED_DEVICE, "did/pub/X25519/enc/base58", X25519_KEY, 10**9, sender=owner)
            for offset in (999,):
                blocks[offset] = _mine(chain, t0 + offset)
            _stamp(chain, t0 + 1000)
            blocks[1000] = rotate_device_key(
                chain, dep, SECP_DEVICE, "secp256k1", public_key_of("secp256k1", SECP_NEW)
            ).block_number
            for offset in (1001, 1999, 2000, 2099):
                blocks[offset] = _mine(chain, t0 + offset)
            _stamp(chain, t0 + 2100)
            blocks[2100] = revoke_device(chain, dep, P256_DEVICE, (t0 + 2000) * 1000).block_number
            blocks[2499] = _mine(chain, t0 + 2499)
            _stamp(chain, t0 + 2500)
            blocks[2500] = revoke_device(chain, dep, ED_DEVICE, (t0 + 3000) * 1000, sender=owner).block_number
            for offset in (2999, 3000, 3500):
                blocks[offset] = _mine(chain, t0 + offset)
            yield History(node.url, dep.device_registry, t0, blocks, dep, owner.lower())
        finally:
            chain.close()


def _pipeline_keys(history: History, tmp_path: Path) -> dict[int, dict[str, str | None]]:
    """The key in force for a reading stamped at each sample, by device, in the pipeline's view
    of the registry as of that sample's block."""
    chain = connect(history.url)
    try:
        reader = ChainRegistryReader(chain, history.dep)
        devices = ChainDevices(history.registry, tmp_path, lambda: contextlib.nullcontext(reader))
        out: dict[int, dict[str, str | None]] = {}
        for offset in SAMPLES:
            view, at_ms = devices.at(history.blocks[offset]), (history.t0 + offset) * 1000
            row: dict[str, str | None] = {}
            for device in DEVICES:
                info = view.get(device)
                key = None if info is None or info.revoked_at(at_ms) else info.key_at(at_ms)
                row[device] = None if key is None or info is None else _comparable(device, info.scheme, key)
            out[offset] = row
        return out
    finally:
        chain.close()


def _resolve(did: str, history: History, *extra: str) -> Any:
    result = runner.invoke(
        app, ["did", "resolve", did, "--chain", history.url, "--registry", history.registry, "--json", *extra]
    )
    return result


def _our_signers(document: dict[str, Any]) -> list[str]:
    """Who signs as the DID (``assertionMethod``), in order: keys as hex, accounts as addresses."""
    methods = {m["id"]: m for m in document.get("verificationMethod", [])}
    keys = []
    for ref in document.get("assertionMethod", []):
        method = methods[ref]
        if method["type"] == "Multikey":
            keys.append(multikey_bytes(method)[1].hex())
        else:
            keys.append("address:" + method["blockchainAccountId"].rpartition(":")[2].lower())
    return keys


def _reference_signers(document: dict[str, Any]) -> list[str]:
    """``_our_signers`` of an ethr-did-resolver document."""
    methods = {m["id"]: m for m in document["verificationMethod"]}
    keys = []
    for ref in document["assertionMethod"]:
        method = methods[ref]
        if "publicKeyHex" in method:
            keys.append(method["publicKeyHex"])
        elif "publicKeyBase58" in method:
            keys.append(base58btc_decode(method["publicKeyBase58"]).hex())
        else:
            keys.append("address:" + method["blockchainAccountId"].rpartition(":")[2].lower())
    return keys


def _device_keys(history: History, signers: list[str]) -> list[str]:
    """The signers after the identity owner's account, which must be the registry: a contract,
    which no signature recovers to."""
    assert signers[:1] == ["address:" + history.registry.lower()], signers
    return signers[1:]


def _reference(node: str, tmp_path: Path, history: History, dids: list[str]) -> list[dict[str, Any]]:
    request = {"rpcUrl": history.url, "registry": history.registry, "chainId": CHAIN_ID, "dids": dids}
    path = tmp_path / "resolve.json"
    path.write_text(json.dumps(request))
    done = subprocess.run([node, str(SCRIPT), "resolve", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_pipeline_did_document_and_ethr_did_resolver_agree_on_the_key_in_force(
    history: History, node: str, tmp_path: Path
) -> None:
    pipeline = _pipeline_keys(history, tmp_path)
    queries = [(offset, device) for offset in SAMPLES for device in DEVICES]
    reference = _reference(
        node, tmp_path, history,
        [f"{device_did(CHAIN_ID, bytes.fromhex(d[2:]))}?versionId={history.blocks[o]}" for o, d in queries],
    )
    for (offset, device), theirs in zip(queries, reference, strict=True):
        did = device_did(CHAIN_ID, bytes.fromhex(device[2:]))
        result = _resolve(did, history, "--at", str((history.t0 + offset) * 1000))
        expected = pipeline[offset][device]
        if offset < 100 or (offset == 100 and device != SECP_DEVICE):
            # not registered yet (the four registrations are blocks t0+100..103)
            assert result.exit_code == 3 and expected is None, (offset, device, result.output)
            continue
        assert result.exit_code == 0, result.output
        ours = json.loads(result.stdout)["didDocument"]
        assert theirs["didDocument"] is not None, theirs
        signers = _our_signers(ours)
        assert signers == _reference_signers(theirs["didDocument"]), (offset, device)
        assert _device_keys(history, signers) == ([] if expected is None else [expected]), (offset, device)
        # each method has the same id in both documents
        for relationship in ("assertionMethod", "authentication"):
            assert ours[relationship] == theirs["didDocument"][relationship]

    # the rotation and the revocations are where they should be
    old, new = (_compressed(public_key_of("secp256k1", k)).hex() for k in (SECP_OLD, SECP_NEW))
    assert [pipeline[o][SECP_DEVICE] for o in (999, 1000, 3500)] == [old, new, new]
    assert pipeline[2099][P256_DEVICE] is not None and pipeline[2100][P256_DEVICE] is None
    assert pipeline[2999][ED_DEVICE] is not None and pipeline[3000][ED_DEVICE] is None
    assert pipeline[3500][ADDR_DEVICE] == "address:" + ADDR_DEVICE


def test_the_document_names_key_agreement_and_expiry(
    history: History, node: str, tmp_path: Path
) -> None:
    ed_did = device_did(CHAIN_ID, bytes.fromhex(ED_DEVICE[2:]))
    # between the ed25519 device's revocation (t0+2500) and its revocation time (t0+3000)
    result = _resolve(ed_did, history, "--at", str((history.t0 + 2_600) * 1000))
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    document = resolved["didDocument"]
    methods = {m["id"]: m for m in document["verificationMethod"]}
    [_, signing] = document["assertionMethod"]
    assert methods[signing]["type"] == "Multikey" and methods[signing]["publicKeyMultibase"].startswith("z6Mk")
    assert methods[signing]["expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(history.t0 + 3_000))
    [agreement] = document["keyAgreement"]
    assert multikey_bytes(methods[agreement]) == (0xEC, X25519_KEY)
    assert resolved["didDocumentMetadata"]["versionId"] == str(history.blocks[2500])

    # now: the reference resolver at the chain's latest state agrees on signers and key agreement
    now = _resolve(ed_did, history)
    assert now.exit_code == 0, now.output
    ours = json.loads(now.stdout)["didDocument"]
    [theirs] = _reference(node, tmp_path, history, [ed_did])
    reference = theirs["didDocument"]
    assert "controller" not in ours and "controller" not in reference
    signers = _our_signers(ours)
    assert signers == _reference_signers(reference) and _device_keys(history, signers) == []  # revoked by now
    [their_agreement] = reference["keyAgreement"]
    their_method = next(m for m in reference["verificationMethod"] if m["id"] == their_agreement)
    assert their_method["type"] == "X25519KeyAgreementKey2019"
    assert base58btc_decode(their_method["publicKeyBase58"]) == X25519_KEY
    assert ours["keyAgreement"] == [their_agreement]

    text = runner.invoke(app, ["did", "resolve", ed_did, "--chain", history.url, "--registry", history.registry,
                               "--at", str((history.t0 + 2_600) * 1000)])
    assert text.exit_code == 0 and "keyAgreement" in text.stdout and "Multikey ed25519 z6Mk" in text.stdout


def test_ethr_did_resolver_lets_no_beneficiary_sign_as_its_device(
    history: History, node: str, tmp_path: Path
) -> None:
    # ERC-1056 resolvers list the identity owner's account as #controller in authentication and
    # assertionMethod: were it the beneficiary, its EOA would sign credentials as the device
    dids = [device_did(CHAIN_ID, bytes.fromhex(d[2:])) for d in DEVICES]
    for resolved in _reference(node, tmp_path, history, dids):
        document = resolved["didDocument"]
        accounts = {m["blockchainAccountId"].rpartition(":")[2].lower()
                    for m in document["verificationMethod"] if "blockchainAccountId" in m}
        assert history.beneficiary not in accounts, document
        controller = next(m for m in document["verificationMethod"] if m["id"] == document["id"] + "#controller")
        assert controller["blockchainAccountId"].lower() == f"eip155:{CHAIN_ID}:{history.registry.lower()}"


def test_resolve_fails_in_one_line_with_its_exit_code(history: History) -> None:
    stranger = device_did(CHAIN_ID, bytes.fromhex("77" * 20))
    other_chain = device_did(1, bytes.fromhex(SECP_DEVICE[2:]))
    cases = [
        ([stranger, "--chain", history.url, "--registry", history.registry], 3, "is not a device"),
        ([other_chain, "--chain", history.url, "--registry", history.registry], 3, "names chain 1"),
        (["did:ethr:0x7a69:0x1234", "--chain", history.url, "--registry", history.registry], 2, "is not did:ethr"),
        ([stranger, "--chain", history.url, "--registry", history.registry, "--at", "yesterday"], 2, "--at"),
        ([stranger, "--chain", f"http://127.0.0.1:{free_port()}", "--registry", history.registry], 4, ""),
    ]
    for args, code, words in cases:
        result = runner.invoke(app, ["did", "resolve", *args])
        assert result.exit_code == code, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.output
