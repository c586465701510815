"""``veristream credential keygen|issue|verify``: issuer keys and W3C verifiable credentials.

An issuer key is a Multikey JSON file (``credential keygen`` writes one, mode 0600;
the reference libraries export the same shape) named by a *key spec*:
``PATH`` or ``file:PATH``, or ``env:NAME`` for an environment variable holding the
key's ``secretKeyMultibase``. A secret key written on the command line itself is
refused without being echoed. The issuer is the key's ``did:key``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veristream.provers import credentials
from veristream.provers.credentials import VerificationResult
from veristream.provers.data_integrity import parse_date_time
from veristream.provers.did_key import did_key, verification_method_id
from veristream.provers.errors import InputRejected, NotFound
from veristream.provers.multikey import (
    SecretKey,
    check_scheme,
    multikey_document,
    secret_key_of_document,
)
from veristream.provers.status_list import MIN_BITS, status_entry

KEY_SPEC_FORMS = "PATH or file:PATH (a Multikey JSON file from `credential keygen`) or env:NAME (a secretKeyMultibase in that variable)"
CREDENTIAL_TYPES = (credentials.DEVICE_CREDENTIAL,)


def keygen(scheme: str, out: str) -> dict[str, Any]:
    """Write a fresh issuer key of ``scheme`` to ``out`` (never over an existing file); the
    public part: DID, verification method, publicKeyMultibase."""
    # KEY
    secret = SecretKey.generate(check_scheme(scheme))
    did = did_key(secret.public_key)
    document = multikey_document(secret, secret.public_key, did, verification_method_id(did))
    # WRITE
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputRejected(f"credential keygen: {out} exists; a key is never overwritten: choose another --out") from None
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    return {
        "scheme": secret.scheme,
        "did": did,
        "verification_method": document["id"],
        "publicKeyMultibase": document["publicKeyMultibase"],
        "out": out,
    }


def load_issuer_key(spec: str) -> SecretKey:
    """The secret key a key spec names (see the module)."""
    # A RAW KEY IS REFUSED
    if spec.startswith("z") and not Path(spec).exists():
        try:
            SecretKey.from_multibase(spec)
        except InputRejected:
            pass
        else:
            raise InputRejected(f"a secret key must not be written on the command line: give the issuer key as {KEY_SPEC_FORMS}")
    # ENVIRONMENT
    if spec.startswith("env:"):
        name = spec[4:]
        value = os.environ.get(name) if name else None
        if not value:
            raise InputRejected(f"issuer key {spec}: the environment variable {name!r} is not set")
        try:
            return SecretKey.from_multibase(value.strip())
        except InputRejected as exc:
            raise InputRejected(f"issuer key {spec}: {exc}") from None
    # FILE
    path = Path(spec[5:] if spec.startswith("file:") else spec)
    if not path.is_file():
        raise NotFound(f"issuer key file {path} does not exist: give the issuer key as {KEY_SPEC_FORMS}")
    try:
        document = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise InputRejected(f"issuer key file {path} is not JSON (a Multikey from `credential keygen`)") from None
    try:
        return secret_key_of_document(document)
    except InputRejected as exc:
        raise InputRejected(f"issuer key file {path}: {exc}") from None


def _timestamp(value: str | None, option: str) -> str | None:
    if value is not None:
        parse_date_time(value, option)
    return value


def issue(
    key_spec: str,
    credential_type: str,
    subject: str,
    model: str,
    serial: str,
    firmware_hash: str,
    manufacturer: str | None = None,
    valid_from: str | None = None,
    valid_until: str | None = None,
    credential_id: str | None = None,
    status_list: str | None = None,
    status_index: int | None = None,
) -> dict[str, Any]:
    """A secured credential of ``credential_type`` about ``subject`` by the key ``key_spec`` names;
    with ``status_list`` and ``status_index``, revocable through bit ``status_index`` of the
    issuer's Bitstring Status List at that URL (its ``credentialStatus``)."""
    # VALIDATE
    if credential_type not in CREDENTIAL_TYPES:
        raise InputRejected(f"--type must be one of {', '.join(CREDENTIAL_TYPES)}, got {credential_type!r}")
    if not credentials.is_did(subject):
        raise InputRejected(f"--subject must be the device's DID (did:METHOD:ID), got {subject!r}")
    key = load_issuer_key(key_spec)
    # BUILD AND SIGN
    try:
        unsecured = credentials.device_credential(
            issuer=did_key(key.public_key),
            subject=subject,
            model=model,
            serial=serial,
            firmware_hash=firmware_hash,
            manufacturer=manufacturer,
            valid_from=_timestamp(valid_from, "--valid-from"),
            valid_until=_timestamp(valid_until, "--valid-until"),
            credential_id=credential_id,
        )
    except credentials.CredentialRejected as exc:
        raise InputRejected(str(exc)) from None
    if (status_list is None) != (status_index is None):
        raise InputRejected("--status-list and --status-index go together: the list's URL and the credential's bit in it")
    if status_list is not None and status_index is not None:
        if status_index < 0 or status_index >= MIN_BITS:
            raise InputRejected(f"--status-index must be between 0 and {MIN_BITS - 1}, got {status_index}")
        unsecured["credentialStatus"] = status_entry(status_list, status_index)
    return credentials.issue(unsecured, key)


def read_credential(path: str) -> Any:
    """The JSON document in ``path`` (``-``: stdin)."""
    import sys

    if path == "-":
        text = sys.stdin.read()
    else:
        file = Path(path)
        if not file.is_file():
            raise NotFound(f"credential file {path} does not exist")
        text = file.read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputRejected(f"{path} is not JSON: {exc}") from None


def verify(path: str, now: str | None = None) -> VerificationResult:
    """The verdict on the credential in ``path`` at ``now`` (a dateTimeStamp; default: the
    current time), issuers resolved offline (did:key)."""
    moment = datetime.now(UTC) if now is None else parse_date_time(now, "--now")
    return credentials.verify(read_credential(path), now=moment)


def render_verdict(result: VerificationResult) -> str:
    """One line for people."""
    kinds = "/".join(t for t in result.types if t != credentials.VERIFIABLE_CREDENTIAL) or "VerifiableCredential"
    if result.verified:
        return f"verified: {kinds} issued by {result.issuer} ({result.cryptosuite})"
    return f"not verified ({result.reason}): {result.detail}"
