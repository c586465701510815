"""The one vocabulary of why a message or reading is rejected, and of where.

``Reason`` is what the dead-letter store records, what the simulator's ground
truth predicts, what the pipeline counts per epoch and what the docs list.
``Stage`` names the step that decided. ``SignatureFault`` is the finer verdict
of a device-signature check; the dead-letter store files it under the
``Reason`` it amounts to (``Reason.of_signature_fault``), with the fault as
the detail.

Members are ``str``s: they compare equal to, and serialise as, their value.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a message or reading was rejected; each member carries its one-line meaning."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # decided at the connector boundary, before the ingest log
    MALFORMED = "malformed", "the message is not a valid envelope (not JSON, a field missing, not hex, out of range)"
    OVERSIZED = "oversized", "the message or its payload exceeds the configured size limit"
    LATE = "late", "its event-time epoch was already closed (end + allowed lateness passed by the watermark)"
    RATE_LIMITED = "rate_limited", "refused before the ingest log because its device, address or connection was over its rate limit; counted by the source, not logged, the sender retries"
    # decided when a closed epoch is processed
    BAD_SIGNATURE = "bad_signature", "the signature does not verify for the device's key over the reading digest"
    UNKNOWN_DEVICE = "unknown_device", "the device is not in the device registry"
    REVOKED = "revoked", "the device was revoked at or before the reading's timestamp"
    CREDENTIAL_REVOKED = "credential_revoked", "the device's credential was revoked in its issuer's status list in force at the reading's timestamp, or the job requires a valid credential the device lacks"
    CLOCK_SKEW = "clock_skew", "the timestamp is further ahead of its arrival time than the allowed skew"
    REPLAY = "replay", "a reading with this device's sequence number (or a higher one) was already accepted"
    DUPLICATE = "duplicate", "a byte-identical copy of an already accepted reading"
    IMPLAUSIBLE = "implausible", "a payload value outside the plausible range of its field"
    WRONG_EPOCH = "wrong_epoch", "a re-executed batch holds a reading stamped outside its epoch"

    @classmethod
    def of_signature_fault(cls, fault: str | None) -> Reason:
        """The reason a failed signature verdict is filed under."""
        if fault == SignatureFault.UNKNOWN_DEVICE:
            return cls.UNKNOWN_DEVICE
        if fault == SignatureFault.MALFORMED_READING:
            return cls.MALFORMED
        return cls.BAD_SIGNATURE


INGEST_REASONS = frozenset({Reason.MALFORMED, Reason.OVERSIZED, Reason.LATE, Reason.RATE_LIMITED})
"""The reasons decided before a message reaches the ingest log."""


class Stage(StrEnum):
    """The step that rejected a message or reading."""

    INGEST = "ingest"  # the connector boundary and the ingest log
    DECODE = "decode"  # parsing the envelope and payload of a logged message
    SIGNATURE = "signature"  # the device-signature check against the registry
    REPLAY = "replay"  # the per-device sequence guard
    PLAUSIBILITY = "plausibility"  # clock skew and plausible payload ranges
    PIPELINE = "pipeline"  # some step of the epoch's pipeline (the simulator's ground truth)


PIPELINE_STAGES = (Stage.DECODE, Stage.SIGNATURE, Stage.REPLAY, Stage.PLAUSIBILITY)
"""The stages of an epoch's pipeline, in order."""


class SignatureFault(StrEnum):
    """Why a device-signature check failed (docs/device-signatures.md)."""

    MALFORMED_READING = "malformed_reading"  # a field out of range or the wrong type
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # the key's scheme is not one VeriStream verifies
    UNKNOWN_DEVICE = "unknown_device"  # no key for the device
    MALFORMED_KEY = "malformed_key"  # the registered key does not parse for its scheme
    MALFORMED_SIGNATURE = "malformed_signature"  # wrong length or not a valid encoding
    BAD_V = "bad_v"  # a secp256k1 recovery id other than 27/28 (or 0/1)
    HIGH_S = "high_s"  # a secp256k1 s above n/2 (EIP-2)
    BAD_SIGNATURE = "bad_signature"  # well-formed but does not verify


class CredentialFault(StrEnum):
    """Why a verifiable credential does not verify (docs/identity.md); each member carries its
    one-line meaning."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> CredentialFault:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    MALFORMED_CREDENTIAL = "malformed_credential", "not a VC 2.0 credential: its context, type, issuer, subject or dates are missing or malformed"
    UNKNOWN_CONTEXT = "unknown_context", "it names a JSON-LD context that is not shipped with VeriStream"
    UNDEFINED_TERM = "undefined_term", "a property, id or type no context defines: it would not be covered by the signature"
    MALFORMED_PROOF = "malformed_proof", "no proof, several, or one that is not a well-formed Data Integrity proof for assertions"
    UNSUPPORTED_CRYPTOSUITE = "unsupported_cryptosuite", "the proof's cryptosuite is not eddsa-rdfc-2022 or ecdsa-rdfc-2019"
    UNRESOLVED_ISSUER = "unresolved_issuer", "the issuer's DID does not resolve here (offline: did:key), or its document lacks the proof's key"
    WRONG_ISSUER_KEY = "wrong_issuer_key", "the proof's verification method is not an assertion key of the issuer, or not a key for its cryptosuite"
    BAD_SIGNATURE = "bad_signature", "the proof does not verify: the credential was changed after signing, or another key signed it"
    EXPIRED = "expired", "its validUntil has passed"
    NOT_YET_VALID = "not_yet_valid", "its validFrom is still in the future"
    UNCHECKED_STATUS = "unchecked_status", "it has a credentialStatus and the verifier was given no way to check it"
    REVOKED = "revoked", "its issuer revoked it: its bit is set in the Bitstring Status List its credentialStatus names"
