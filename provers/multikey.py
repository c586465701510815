"""Multikey: the public and secret keys of credential issuers, as W3C Controlled Identifiers
encode them, with the signing each key does for a Data Integrity proof.

A Multikey is a multicodec-tagged key in multibase base58btc:

| scheme    | public key (multicodec)                 | text      | secret key (multicodec)  |
|-----------|-----------------------------------------|-----------|--------------------------|
| `ed25519` | 32-byte point (`ed25519-pub`, 0xed)     | `z6Mk...` | 32-byte seed (0x1300)    |
| `p256`    | 33-byte compressed point (0x1200)       | `zDn...`  | 32-byte scalar (0x1306)  |

Scheme names are the ones device keys use (``ed25519``, ``p256``). Ed25519 signs
the message itself (RFC 8032); P-256 signs SHA-256 of the message (ECDSA with a
deterministic RFC 6979 nonce, ``s`` normalised to the lower half) and the
signature is raw ``r || s``, 64 bytes, as WebCrypto produces and verifies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from veristream.provers.errors import InputRejected
from veristream.provers.multibase import (
    multibase_decode,
    multibase_encode,
    multicodec_unwrap,
    multicodec_wrap,
)
from veristream.provers.schemes import ed25519 as ed25519_scheme
from veristream.provers.schemes import p256 as p256_scheme

ED25519 = "ed25519"
P256 = "p256"
SCHEMES = (ED25519, P256)

MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
PUBLIC_CODECS = {ED25519: 0xED, P256: 0x1200}
SECRET_CODECS = {ED25519: 0x1300, P256: 0x1306}
_SCHEME_OF_PUBLIC_CODEC = {code: scheme for scheme, code in PUBLIC_CODECS.items()}
_SCHEME_OF_SECRET_CODEC = {code: scheme for scheme, code in SECRET_CODECS.items()}
PUBLIC_KEY_LENGTHS = {ED25519: 32, P256: 33}
SECRET_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64

_P256_SIGNING = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_P256_VERIFYING = ec.ECDSA(hashes.SHA256())


def check_scheme(scheme: str) -> str:
    """``scheme`` if it is one a credential issuer key can have; ``InputRejected`` otherwise."""
    if scheme not in SCHEMES:
        raise InputRejected(f"issuer key scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    return scheme


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A checked public key: ``raw`` is the 32-byte Ed25519 point or the 33-byte compressed
    P-256 point."""

    scheme: str
    raw: bytes

    @classmethod
    def from_raw(cls, scheme: str, raw: bytes) -> PublicKey:
        """The key of ``scheme`` from its raw bytes (P-256: 33-byte compressed, or 65-byte
        ``0x04 || x || y`` which is compressed here); ``InputRejected`` if it is not a valid point."""
        # VALIDATE
        check_scheme(scheme)
        if not isinstance(raw, bytes | bytearray):
            raise InputRejected(f"{scheme} public key must be bytes, got {type(raw).__name__}")
        # DECODE
        if scheme == ED25519:
            return cls(ED25519, ed25519_scheme.canonical_public_key(bytes(raw)))
        if len(raw) not in (33, 65):
            raise InputRejected(f"p256 public key must be 33 (compressed) or 65 bytes, got {len(raw)}")
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(p256_scheme.CURVE, bytes(raw))
        except ValueError:
            raise InputRejected("p256 public key is not a point of the curve") from None
        compressed = point.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return cls(P256, compressed)

    @classmethod
    def from_multibase(cls, text: str) -> PublicKey:
        """The key a ``publicKeyMultibase`` (``z6Mk...`` or ``zDn...``) encodes."""
        code, body = multicodec_unwrap(multibase_decode(text, "publicKeyMultibase"))
        scheme = _SCHEME_OF_PUBLIC_CODEC.get(code)
        if scheme is None:
            raise InputRejected(
                f"publicKeyMultibase {text!r}: multicodec 0x{code:x} is not an Ed25519 (0xed) or "
                "P-256 (0x1200) public key"
            )
        if len(body) != PUBLIC_KEY_LENGTHS[scheme]:
            raise InputRejected(
                f"publicKeyMultibase {text!r}: a {scheme} key is {PUBLIC_KEY_LENGTHS[scheme]} bytes, got {len(body)}"
            )
        return cls.from_raw(scheme, body)

    @property
    def multibase(self) -> str:
        """The ``publicKeyMultibase`` of this key (also its ``did:key`` method-specific id)."""
        return multibase_encode(multicodec_wrap(PUBLIC_CODECS[self.scheme], self.raw))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (64 bytes) signs ``message`` under this key (see the module)."""
        if len(signature) != SIGNATURE_LENGTH:
            return False
        if self.scheme == ED25519:
            try:
                VerifyKey(self.raw).verify(message, signature)
            except BadSignatureError:
                return False
            return True
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < p256_scheme.N and 0 < s < p256_scheme.N):
            return False
        point = ec.EllipticCurvePublicKey.from_encoded_point(p256_scheme.CURVE, self.raw)
        try:
            point.verify(p256_scheme.der_signature(signature), message, _P256_VERIFYING)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SecretKey:
    """An issuer's secret key: the 32-byte Ed25519 seed or P-256 scalar. Its ``repr`` hides it."""

    scheme: str
    raw: bytes

    def __repr__(self) -> str:
        return f"SecretKey({self.scheme}, {self.public_key.multibase})"

    @classmethod
    def from_raw(cls, scheme: str, raw: bytes) -> SecretKey:
        """The key of ``scheme`` from its 32 raw bytes; ``InputRejected`` if out of range."""
        # VALIDATE
        check_scheme(scheme)
        if not isinstance(raw, bytes | bytearray) or len(raw) != SECRET_KEY_LENGTH:
            raise InputRejected(f"{scheme} secret key must be {SECRET_KEY_LENGTH} bytes")
        if scheme == P256 and not 0 < int.from_bytes(raw, "big") < p256_scheme.N:
            raise InputRejected("p256 secret key is out of range (0 < d < n)")
        return cls(scheme, bytes(raw))

    @classmethod
    def generate(cls, scheme: str) -> SecretKey:
        """A fresh random key of ``scheme``."""
        check_scheme(scheme)
        if scheme == ED25519:
            return cls(ED25519, bytes(SigningKey.generate()))
        private = ec.generate_private_key(p256_scheme.CURVE)
        return cls(P256, private.private_numbers().private_value.to_bytes(32, "big"))

    @classmethod
    def from_multibase(cls, text: str) -> SecretKey:
        """The key a ``secretKeyMultibase`` encodes (an Ed25519 one may also carry its public key
        after the seed, as older exports did: it must match)."""
        code, body = multicodec_unwrap(multibase_decode(text, "secretKeyMultibase"))
        scheme = _SCHEME_OF_SECRET_CODEC.get(code)
        if scheme is None:
            raise InputRejected(
                f"secretKeyMultibase: multicodec 0x{code:x} is not an Ed25519 (0x1300) or P-256 (0x1306) secret key"
            )
        if scheme == ED25519 and len(body) == 64:
            key = cls.from_raw(ED25519, body[:32])
            if key.public_key.raw != body[32:]:
                raise InputRejected("secretKeyMultibase: the public half does not match the seed")
            return key
        return cls.from_raw(scheme, body)

    @property
    def multibase(self) -> str:
        """The ``secretKeyMultibase`` of this key."""
        return multibase_encode(multicodec_wrap(SECRET_CODECS[self.scheme], self.raw))

    @property
    def public_key(self) -> PublicKey:
        """The public key of this secret key."""
        if self.scheme == ED25519:
            return PublicKey(ED25519, ed25519_scheme.public_key_of(self.raw))
        private = ec.derive_private_key(int.from_bytes(self.raw, "big"), p256_scheme.CURVE)
        compressed = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
        return PublicKey(P256, compressed)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message`` (see the module for each scheme)."""
        if self.scheme == ED25519:
            return bytes(SigningKey(self.raw).sign(message).signature)
        private = ec.derive_private_key(int.from_bytes(self.raw, "big"), p256_scheme.CURVE)
        r, s = decode_dss_signature(private.sign(message, _P256_SIGNING))
        s = min(s, p256_scheme.N - s)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def multikey_document(secret: SecretKey | None, public: PublicKey, controller: str, key_id: str) -> dict[str, Any]:
    """A Multikey document (the JSON reference libraries export and import): ``id``,
    ``controller``, ``publicKeyMultibase`` and, with ``secret``, ``secretKeyMultibase``."""
    document: dict[str, Any] = {
        "@context": MULTIKEY_CONTEXT,
        "id": key_id,
        "type": "Multikey",
        "controller": controller,
        "publicKeyMultibase": public.multibase,
    }
    if secret is not None:
        document["secretKeyMultibase"] = secret.multibase
    return document


def secret_key_of_document(document: Mapping[str, Any]) -> SecretKey:
    """The secret key of a Multikey document holding ``secretKeyMultibase``, checked against its
    ``publicKeyMultibase`` when it has one."""
    # VALIDATE
    if not isinstance(document, Mapping) or document.get("type") != "Multikey":
        raise InputRejected("a key file must be a Multikey JSON object (type 'Multikey')")
    text = document.get("secretKeyMultibase")
    if not isinstance(text, str):
        raise InputRejected("the Multikey holds no secretKeyMultibase: it is a public key only")
    # DECODE
    secret = SecretKey.from_multibase(text)
    published = document.get("publicKeyMultibase")
    if published is not None and published != secret.public_key.multibase:
        raise InputRejected("the Multikey's publicKeyMultibase is not the public key of its secretKeyMultibase")
    return secret
