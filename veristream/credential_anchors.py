"""Credentials on a job's chain: registration with a credential, revocation by status list, and
the pins each epoch takes from the CredentialRegistry.

A job with ``devices.address`` and ``devices.credentials.registry`` keeps, in the
CredentialRegistry, each device's credential (its keccak256 and IPFS CID, recorded
when the device is registered with ``--credential``) and each issuer's status
lists (the CID of the current ``BitstringStatusListCredential``, published by
the account the registry's owner authorised for the issuer). Documents live in
the job's IPFS store.

``register`` checks a credential before the device goes on chain: it verifies
(proof, dates, and its status in the list currently anchored), its subject is
the device's DID, its issuer is trusted and its type allowed. ``revoke`` sets a
credential's bit: it re-issues the list with a later ``validFrom``, stores it
and anchors it. ``ChainSource`` gives the pipeline an epoch's pins.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from veristream import devices
from veristream.chain import connect_job_chain
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.contracts.artifacts import ContractRevert
from veristream.contracts.chain import Chain
from veristream.contracts.credential_registry import (
    anchor_device_credential,
    current_status_list,
    device_credential,
    publish_status_list,
    set_publisher,
    status_list_history,
)
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.contracts.device_registry import registry_deployment
from veristream.credentials import load_issuer_key, read_credential
from veristream.pipeline.credential_status import (
    CredentialPins,
    PinnedList,
    check_list_version,
    in_force,
)
from veristream.pipeline.jobspec import CredentialsSpec, JobSpec
from veristream.provers import credentials
from veristream.provers.did_ethr import device_did
from veristream.provers.did_key import did_key
from veristream.provers.encoding import canonical_json, keccak256, parse_address
from veristream.provers.errors import InputRejected, Mismatch
from veristream.provers.status_list import (
    PublishedList,
    StatusList,
    StatusListRejected,
    entry_of,
    read_status_list_credential,
    status_check,
    status_list_credential,
)


def _spec(job: JobSpec) -> CredentialsSpec:
    spec = job.devices.credentials
    if spec is None:
        raise InputRejected(f"job {job.job_id!r} has no devices.credentials: its devices hold no credentials")
    return spec


@contextlib.contextmanager
def _anchors(job: JobSpec, *, read_only: bool = False) -> Iterator[tuple[Chain, Deployment]]:
    """The job's chain and a deployment naming its DeviceRegistry and CredentialRegistry
    (``read_only``: an embedded chain's saved state, opened beside a run that holds it)."""
    spec = _spec(job)
    if job.devices.address is None or spec.registry is None:
        raise InputRejected(
            "credentials are anchored on chain: the job needs devices.address and devices.credentials.registry "
            "(the deployment's device_registry and credential_registry)"
        )
    chain = connect_job_chain(job, read_only=read_only)
    try:
        dep = replace(registry_deployment(chain, job.devices.address), credential_registry=checksum_address(spec.registry))
        yield chain, dep
    finally:
        chain.close()


def _refused(error: ContractRevert, dep: Deployment) -> InputRejected:
    return InputRejected(f"the CredentialRegistry at {dep.credential_registry} refused: {error}")


def load_credential(path: str) -> dict[str, Any]:
    """The credential (a JSON object) in the file ``path``."""
    document = read_credential(path)
    if not isinstance(document, dict):
        raise InputRejected(f"credential file {path} does not hold a JSON object")
    return document


# STATUS LISTS


def _published(chain: Chain, dep: Deployment, store: BlockStore, issuer: str, list_url: str) -> tuple[PublishedList | None, int]:
    """The list currently anchored for ``issuer``'s ``list_url`` (None: never published) and its
    ``validFrom`` (unix seconds; 0 when none)."""
    anchor = current_status_list(chain, dep, issuer, list_url)
    if anchor is None:
        return None, 0
    document = json.loads(store.get(anchor.cid))
    published = read_status_list_credential(document)
    verdict = credentials.verify(document, now=datetime.fromtimestamp(anchor.anchored_at, UTC))
    if not verdict.verified or published.issuer != issuer or published.list_url != list_url:
        raise Mismatch(f"the status list anchored for {list_url} ({anchor.cid}) is not {issuer}'s verified list: {verdict.detail}")
    return published, anchor.valid_from


def _check_status(chain: Chain, dep: Deployment, store: BlockStore, credential: dict[str, Any]) -> credentials.StatusCheck:
    """The status check of ``credential`` against its list as anchored now; a list never
    published revokes nothing (an empty list of the issuer stands in for it)."""
    try:
        entry = entry_of(credential)
    except StatusListRejected as exc:
        raise InputRejected(f"the credential's credentialStatus: {exc}") from None
    if entry is None:
        return status_check({})
    issuer = credentials.issuer_of(credential)
    published, _ = _published(chain, dep, store, issuer, entry.list_url)
    if published is None:
        published = PublishedList(entry.list_url, issuer, entry.purpose, None, StatusList.empty())
    return status_check({entry.list_url: published})


def authorize(job: JobSpec, issuer: str, publisher: str) -> dict[str, Any]:
    """Authorise ``publisher`` to publish ``issuer``'s status lists (the CredentialRegistry's owner)."""
    if not credentials.is_did(issuer):
        raise InputRejected(f"--issuer must be a DID, got {issuer!r}")
    with _anchors(job) as (chain, dep):
        try:
            receipt = set_publisher(chain, dep, issuer, checksum_address(publisher))
        except ContractRevert as error:
            raise _refused(error, dep) from None
    return {"issuer": issuer, "publisher": checksum_address(publisher), "tx_hash": receipt.tx_hash, "block": receipt.block_number}


def revoke(
    job: JobSpec, key_spec: str, list_url: str | None, index: int | None, credential_file: str | None, restore: bool = False
) -> dict[str, Any]:
    """Set (``restore``: clear) bit ``index`` of the issuer's list ``list_url`` (or the bit a
    credential's ``credentialStatus`` names) and publish the new list: a re-issued
    ``BitstringStatusListCredential`` with a later ``validFrom``, stored in the job's IPFS store
    and anchored (the issuer's authorised publisher sends it)."""
    # WHICH BIT
    key = load_issuer_key(key_spec)
    issuer = did_key(key.public_key)
    if credential_file is not None:
        credential = load_credential(credential_file)
        entry = entry_of(credential)
        if entry is None:
            raise InputRejected(f"{credential_file} has no BitstringStatusListEntry: it cannot be revoked")
        if credentials.issuer_of(credential) != issuer:
            raise InputRejected(f"{credential_file} was issued by {credentials.issuer_of(credential)}, not the key's {issuer}")
        list_url, index = entry.list_url, entry.index
    if list_url is None or index is None:
        raise InputRejected("give --credential FILE, or --list URL and --index N")
    store = open_store(job.ipfs, job.work_dir)
    with _anchors(job) as (chain, dep):
        # THE NEW LIST
        published, previous = _published(chain, dep, store, issuer, list_url)
        current = published.status_list if published is not None else StatusList.empty()
        updated = current.set(index, not restore)
        valid_from = max(int(time.time()), chain.timestamp(), previous + 1)
        stamp = credentials.utc_timestamp(datetime.fromtimestamp(valid_from, UTC))
        secured = credentials.issue(
            status_list_credential(list_url=list_url, issuer=issuer, status_list=updated, valid_from=stamp),
            key,
            created=stamp,
        )
        # STORE, THEN ANCHOR
        cid = store.put(canonical_json(secured))
        store.pin(cid)
        try:
            receipt = publish_status_list(chain, dep, issuer, list_url, cid, valid_from)
        except ContractRevert as error:
            raise _refused(error, dep) from None
    return {
        "issuer": issuer,
        "list": list_url,
        "index": index,
        "revoked": not restore,
        "cid": cid,
        "valid_from": stamp,
        "tx_hash": receipt.tx_hash,
        "block": receipt.block_number,
    }


def status(job: JobSpec, credential_file: str) -> dict[str, Any]:
    """Whether a credential is revoked in its list as anchored now (``revoked``), with the list's
    CID; a list never published revokes nothing."""
    credential = load_credential(credential_file)
    entry = entry_of(credential)
    if entry is None:
        raise InputRejected(f"{credential_file} has no BitstringStatusListEntry")
    issuer = credentials.issuer_of(credential)
    store = open_store(job.ipfs, job.work_dir, read_only=True)
    with _anchors(job, read_only=True) as (chain, dep):
        published, _ = _published(chain, dep, store, issuer, entry.list_url)
        anchor = current_status_list(chain, dep, issuer, entry.list_url)
    revoked = published is not None and published.status_list.get(entry.index)
    return {
        "issuer": issuer,
        "list": entry.list_url,
        "index": entry.index,
        "revoked": revoked,
        "cid": None if anchor is None else anchor.cid,
        "version": 0 if anchor is None else anchor.version,
    }


# REGISTRATION


def check_for_device(
    chain: Chain, dep: Deployment, store: BlockStore, spec: CredentialsSpec, device: str, credential: dict[str, Any]
) -> credentials.VerificationResult:
    """``credential`` checked for ``device``: verified now (its status in the list anchored now),
    its subject the device's DID on this chain, its issuer trusted, its type allowed;
    ``InputRejected`` naming what fails."""
    verdict = credentials.verify(credential, status_check=_check_status(chain, dep, store, credential))
    if not verdict.verified:
        raise InputRejected(f"the credential does not verify ({verdict.reason}): {verdict.detail}")
    subject = credential.get("credentialSubject")
    did = device_did(int(chain.chain_id), parse_address(device))
    if not isinstance(subject, dict) or subject.get("id") != did:
        found = subject.get("id") if isinstance(subject, dict) else None
        raise InputRejected(f"the credential is about {found}, not the device {did}")
    if verdict.issuer not in spec.trusted_issuers:
        raise InputRejected(f"the credential's issuer {verdict.issuer} is not in devices.credentials.trusted_issuers")
    if not set(verdict.types) & set(spec.types):
        raise InputRejected(f"the credential's types {list(verdict.types)} are none of devices.credentials.types {spec.types}")
    return verdict


def register(
    job: JobSpec, device: str, owner: str, scheme: str, public_key: str | None, credential_file: str | None
) -> dict[str, Any]:
    """Register a device, with its credential when the job names ``devices.credentials``: the
    credential is checked (``check_for_device``) before the device goes on chain, then stored
    in the job's IPFS store and anchored with the device. Where credentials are ``required``, a
    device without one is refused."""
    spec = job.devices.credentials
    if spec is None:
        if credential_file is not None:
            raise InputRejected(f"job {job.job_id!r} has no devices.credentials: --credential has nothing to check it against")
        return devices.register(job, device, owner, scheme, public_key)
    if credential_file is None:
        if spec.required:
            raise InputRejected(f"job {job.job_id!r} requires a credential (devices.credentials.required): give --credential FILE")
        return devices.register(job, device, owner, scheme, public_key)
    # CHECK, BEFORE ANYTHING IS WRITTEN
    credential = load_credential(credential_file)
    if not _is_address(device):
        raise InputRejected(f"--device must be a 0x-prefixed 20-byte address, got {device!r}")
    address = checksum_address(device)
    store = open_store(job.ipfs, job.work_dir)
    with _anchors(job) as (chain, dep):
        verdict = check_for_device(chain, dep, store, spec, address, credential)
    # REGISTER, STORE, ANCHOR
    result = devices.register(job, device, owner, scheme, public_key)
    data = canonical_json(credential)
    cid = store.put(data)
    store.pin(cid)
    with _anchors(job) as (chain, dep):
        try:
            receipt = anchor_device_credential(chain, dep, address, keccak256(data), cid)
        except ContractRevert as error:
            raise _refused(error, dep) from None
    return {**result, "credential_cid": cid, "issuer": verdict.issuer, "credential_tx_hash": receipt.tx_hash}


def _is_address(text: str) -> bool:
    try:
        parse_address(text)
    except ValueError:
        return False
    return True


# THE PIPELINE'S PINS


@dataclass(frozen=True, slots=True)
class ChainSource:
    """An epoch's pins from the job's CredentialRegistry: each device's anchored credential (its
    bytes checked against the anchored hash) and the versions of the lists they name in force
    in the epoch, each version taking effect at its block's time; a version whose credential
    does not verify or is not what it is anchored as is left out."""

    job: JobSpec

    def __call__(self, start_ms: int, end_ms: int, store: BlockStore) -> CredentialPins:
        spec = _spec(self.job)
        with _anchors(self.job, read_only=True) as (chain, dep):
            # CREDENTIALS
            registry = contract(chain, "CredentialRegistry", str(dep.credential_registry))
            logs = registry.events.DeviceCredentialAnchored.get_logs(from_block=0, to_block="latest")
            pinned: dict[str, str] = {}
            lists: set[tuple[str, str]] = set()
            for device in sorted({str(log["args"]["device"]) for log in logs}):
                anchor = device_credential(chain, dep, device)
                if anchor is None or keccak256(store.get(anchor.cid)) != anchor.credential_hash:
                    continue
                document = json.loads(store.get(anchor.cid))
                pinned[device.lower()] = anchor.cid
                entry = entry_of(document) if isinstance(document, dict) else None
                if entry is not None:
                    lists.add((credentials.issuer_of(document), entry.list_url))
            # LISTS
            versions: list[PinnedList] = []
            for issuer, list_url in sorted(lists):
                for version in status_list_history(chain, dep, issuer, list_url):
                    candidate = PinnedList(issuer, list_url, version.cid, version.valid_from, version.anchored_at * 1000)
                    try:
                        check_list_version(json.loads(store.get(version.cid)), candidate, spec)
                    except (Mismatch, ValueError):
                        continue
                    versions.append(candidate)
        return CredentialPins(pinned, in_force(versions, start_ms, end_ms))


def credential_source(job: JobSpec) -> ChainSource | None:
    """The pins' source of a job whose credentials are anchored on chain (None otherwise: no
    credentials, or a credentials file the pipeline reads itself)."""
    spec = job.devices.credentials
    if spec is None or spec.file is not None or spec.registry is None:
        return None
    return ChainSource(job)


__all__ = [
    "ChainSource",
    "authorize",
    "check_for_device",
    "credential_source",
    "load_credential",
    "register",
    "revoke",
    "status",
]
