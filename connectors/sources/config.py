"""Configuration of each source, as a job spec's ``sources:`` list holds them.

One pydantic v2 model per connector, told apart by ``type``; ``SourceConfig``
is their discriminated union, which the job spec validates against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from veristream.connectors.envelope import DEFAULT_MAX_PAYLOAD_BYTES
from veristream.provers.errors import SpecError


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Config):
    """TLS towards a broker: the CA that signed its certificate, optionally a client certificate."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    server_hostname_check: bool = True


class ServerTlsConfig(_Config):
    """TLS on a listening source: its certificate and key; with ``client_ca_file``, mutual TLS.

    Under mutual TLS a client without a certificate signed by that CA fails the
    handshake, and the subject of the certificate is recorded with each message.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class AuthConfig(_Config):
    """Who may send to a listening source: bearer tokens, as SHA-256 hex digests one a line.

    The file is read again whenever it changes, so tokens are added and revoked
    without a restart. No file: no token is asked for.
    """

    tokens_file: Path | None = None


class LimitsConfig(_Config):
    """How much a source takes; every key is optional and an absent key sets no limit.

    Rates are token buckets: ``*_per_s`` tokens a second, at most the burst in
    hand (the burst defaults to one second's worth, at least 1). The device
    limit is checked on the envelope's parsed ``device_id`` before the durable
    append; the address and connection limits at the socket, before the body is
    read. ``junk_bodies_per_epoch`` bounds how many messages that do not parse,
    or come from devices the registry does not know, are kept in full per epoch;
    beyond it only their count, size and hash are kept.
    """

    per_device_per_s: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    per_address_per_s: float | None = Field(default=None, gt=0)
    per_address_burst: int | None = Field(default=None, ge=1)
    per_connection_per_s: float | None = Field(default=None, gt=0)
    per_connection_burst: int | None = Field(default=None, ge=1)
    max_connections_per_address: int | None = Field(default=None, ge=1)
    junk_bodies_per_epoch: int | None = Field(default=None, ge=0)
    max_tracked_keys: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> LimitsConfig:
        for rate, burst in (
            ("per_device_per_s", "burst"),
            ("per_address_per_s", "per_address_burst"),
            ("per_connection_per_s", "per_connection_burst"),
        ):
            if getattr(self, burst) is not None and getattr(self, rate) is None:
                raise SpecError(f"limits.{burst} needs limits.{rate}")
        return self

    def at_the_socket(self) -> list[str]:
        """The keys set here that only a listening socket can enforce."""
        keys = (
            "per_address_per_s",
            "per_address_burst",
            "per_connection_per_s",
            "per_connection_burst",
            "max_connections_per_address",
        )
        return [key for key in keys if getattr(self, key) is not None]


class MqttSourceConfig(_Config):
    """Subscribe to readings on an MQTT broker (QoS 1, acknowledged after the durable append)."""

    type: Literal["mqtt"] = "mqtt"
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topics: list[str] = Field(default_factory=lambda: ["veristream/readings/#"], min_length=1)
    qos: Literal[1] = 1
    client_id: str = "veristream-ingest"
    clean_start: bool = False
    username: str | None = None
    password: str | None = None
    tls: TlsConfig | None = None
    transport: Literal["tcp", "websockets"] = "tcp"
    ws_path: str = "/mqtt"
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, gt=0)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _check(self) -> MqttSourceConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise SpecError("reconnect_max_s must be >= reconnect_min_s")
        if (self.username is None) != (self.password is None):
            raise SpecError("username and password go together")
        socket_keys = self.limits.at_the_socket()
        if socket_keys:
            # The broker owns the devices' sockets; per-client limits belong in its config.
            raise SpecError(f"limits {socket_keys} apply to http and websocket sources, not mqtt")
        return self


class HttpSourceConfig(_Config):
    """Serve ``POST /v1/readings`` (and the ``/v1/stream`` WebSocket) on ``host:port``."""

    type: Literal["http"] = "http"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1 << 20, gt=0)
    max_batch: int = Field(1000, gt=0)
    max_pending: int = Field(10_000, gt=0)
    max_in_flight_requests: int = Field(64, gt=0)
    retry_after_s: int = Field(1, ge=1)
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, gt=0)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: ServerTlsConfig | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


class WebSocketSourceConfig(_Config):
    """A stand-alone WebSocket stream of envelopes, one per message, each acknowledged."""

    type: Literal["websocket"] = "websocket"
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    path: str = "/v1/stream"
    max_in_flight: int = Field(1000, gt=0)
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, gt=0)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: ServerTlsConfig | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


class FileSourceConfig(_Config):
    """Replay recorded readings from a JSON-lines or Parquet file, in timestamp order."""

    type: Literal["file"] = "file"
    path: Path
    format: Literal["jsonl", "parquet"] | None = None
    speed: float | None = Field(None, gt=0)
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, gt=0)


FAULTS = (
    "bad_signature",
    "replayed_seq",
    "duplicate",
    "unknown_device",
    "revoked_device",
    "clock_skew",
    "out_of_order",
    "malformed_json",
    "oversized",
    "implausible",
)


CREDENTIAL_FAULTS = ("credential_revoked",)
"""Faults that need the job's devices to hold credentials (``devices.credentials``): not among
``FAULTS`` (``--all-faults``), asked for by name."""


SchemeName = Literal["secp256k1", "ed25519", "p256"]


def _all_schemes() -> list[SchemeName]:
    return ["secp256k1", "ed25519", "p256"]


class SimulatorSourceConfig(_Config):
    """An in-process device fleet (``veristream simulate``) as a source."""

    type: Literal["simulator"] = "simulator"
    seed: int = 0
    devices_per_scheme: int = Field(3, ge=1, le=10_000)
    schemes: list[SchemeName] = Field(default_factory=_all_schemes, min_length=1)
    profile: Literal["weather-station", "air-quality", "gps-coverage", "mixed"] = "mixed"
    count: int = Field(300, ge=0)
    rate: float = Field(100.0, gt=0)
    start_ms: int | None = Field(None, ge=0)
    fault_rate: float = Field(0.02, ge=0, le=1)
    faults: list[str] = Field(default_factory=list)
    clock_skew_ms: int = Field(600_000, gt=0)
    max_payload_bytes: int = Field(DEFAULT_MAX_PAYLOAD_BYTES, gt=0)
    chain_id: int = Field(31337, ge=0)
    verifying_contract: str = "0x" + "00" * 20
    registry_file: Path | None = None
    ground_truth: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> SimulatorSourceConfig:
        unknown = sorted(set(self.faults) - set(FAULTS) - set(CREDENTIAL_FAULTS))
        if unknown:
            raise SpecError(f"unknown faults {unknown}; known: {', '.join(FAULTS + CREDENTIAL_FAULTS)}")
        return self


SourceConfig = Annotated[
    MqttSourceConfig
    | HttpSourceConfig
    | WebSocketSourceConfig
    | FileSourceConfig
    | SimulatorSourceConfig,
    Field(discriminator="type"),
]
"""Any one source; pydantic picks the model by its ``type``."""
