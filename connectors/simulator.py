"""A device fleet simulator with fault injection and exact ground truth.

``simulate(config)`` builds a fleet (N devices of each scheme, keys derived
from the seed), generates ``count`` good readings at ``rate`` readings/s plus
the requested faults, and returns every message in delivery order with what
must become of it: accepted, or rejected with which reason at which stage
(``veristream.provers.reasons.Reason``). Same config, same bytes.

Faults (each adds ``max(1, round(fault_rate * count))`` messages):

- ``bad_signature``: signed, then the payload altered -> pipeline ``bad_signature``
- ``replayed_seq``: a new reading reusing an earlier sequence number -> ``replay``
- ``duplicate``: the previous good message sent again, byte for byte -> ``duplicate``
- ``unknown_device``: a validly signed reading from a device not in the registry -> ``unknown_device``
- ``revoked_device``: readings from a device revoked at the first of them, late in the
  run -> ``revoked`` (its one reading before the revocation is accepted)
- ``credential_revoked``: readings from a registered device whose credential its
  manufacturer revokes (a new status list) at the first of them, late in the run ->
  ``credential_revoked`` (its one reading before the revocation is accepted)
- ``clock_skew``: readings of a device whose clock runs ``clock_skew_ms`` ahead -> ``clock_skew``
- ``out_of_order``: good readings delivered up to 3 slots late -> accepted
- ``malformed_json``: a good envelope cut short -> ingest ``malformed``
- ``oversized``: a signed reading with a payload over the limit -> ingest ``oversized``
- ``implausible``: a signed reading with a value out of its plausible range -> ``implausible``

The ground truth holds for the pipeline's order of checks (decode; signature and
registry membership; replay/duplicate guard, where ties between equal sequence
numbers go to the earlier arrival; then revocation, clock skew and plausible
values) and for any order that checks state-free rules earlier, because every
faulty message carries exactly one fault. It assumes an allowed lateness of at
least 4 send slots (4000 / rate ms), so that delayed deliveries are not late,
and delivery in the listed order (originals of replays arrive first).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veristream.connectors.envelope import encode_reading
from veristream.connectors.sim_profiles import PROFILES, Profile
from veristream.connectors.sources.config import CREDENTIAL_FAULTS, FAULTS, SimulatorSourceConfig
from veristream.provers.credentials import device_credential, issue, utc_timestamp
from veristream.provers.did_ethr import device_did
from veristream.provers.did_key import did_key
from veristream.provers.encoding import canonical_json, keccak256
from veristream.provers.errors import InputRejected
from veristream.provers.multikey import SecretKey
from veristream.provers.readings import Domain, Reading
from veristream.provers.reasons import Reason, Stage
from veristream.provers.signing import device_id_from_public_key, public_key_of, sign_reading
from veristream.provers.status_list import StatusList, status_entry, status_list_credential

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: file output stays reproducible
OUT_OF_ORDER_WINDOW = 3

# fault -> (expected reason, stage)
FAULT_OUTCOMES: dict[str, tuple[str | None, str | None]] = {
    "bad_signature": (Reason.BAD_SIGNATURE, Stage.PIPELINE),
    "replayed_seq": (Reason.REPLAY, Stage.PIPELINE),
    "duplicate": (Reason.DUPLICATE, Stage.PIPELINE),
    "unknown_device": (Reason.UNKNOWN_DEVICE, Stage.PIPELINE),
    "revoked_device": (Reason.REVOKED, Stage.PIPELINE),
    "credential_revoked": (Reason.CREDENTIAL_REVOKED, Stage.PIPELINE),
    "clock_skew": (Reason.CLOCK_SKEW, Stage.INGEST),  # a job's ingest log refuses it (max_clock_skew_ms)
    "out_of_order": (None, None),
    "malformed_json": (Reason.MALFORMED, Stage.INGEST),
    "oversized": (Reason.OVERSIZED, Stage.INGEST),
    "implausible": (Reason.IMPLAUSIBLE, Stage.PIPELINE),
}


@dataclass(slots=True)
class SimDevice:
    """One simulated device and its private state."""

    scheme: str
    private_key: bytes
    public_key: bytes
    device_id: str
    owner: str
    profile: Profile
    registered: bool = True
    revoked_at_ms: int | None = None
    credential_revoked_at_ms: int | None = None
    seq: int = 0
    values: dict[str, int] = field(default_factory=dict)

    def registry_entry(self) -> dict[str, Any]:
        """The device's line in the registry file."""
        return {
            "device_id": self.device_id,
            "scheme": self.scheme,
            "public_key": "0x" + self.public_key.hex(),
            "owner": self.owner,
            "profile": self.profile.name,
            "status": "active" if self.revoked_at_ms is None else "revoked",
            "revoked_at_ms": self.revoked_at_ms,
        }


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message as delivered, with its ground truth."""

    index: int
    raw: bytes
    kind: str
    expected: str  # "accept" | "reject"
    reason: str | None
    stage: str | None
    device_id: str | None
    seq: int | None
    timestamp_ms: int | None
    send_ms: int

    def truth(self) -> dict[str, Any]:
        """The ground-truth line of this message."""
        return {
            "index": self.index,
            "kind": self.kind,
            "expected": self.expected,
            "reason": self.reason,
            "stage": self.stage,
            "device_id": self.device_id,
            "seq": self.seq,
            "timestamp_ms": self.timestamp_ms,
            "send_ms": self.send_ms,
            "raw": self.raw.decode("utf-8", "replace"),
        }


@dataclass(frozen=True, slots=True)
class Simulation:
    """A generated run: the fleet, the domain, and the messages in delivery order."""

    config: SimulatorSourceConfig
    domain: Domain
    devices: tuple[SimDevice, ...]
    messages: tuple[SimMessage, ...]
    start_ms: int

    def registry(self) -> dict[str, Any]:
        """The device registry (registered devices only), as the pipeline loads it."""
        return {
            "domain": {
                "name": self.domain.name,
                "version": self.domain.version,
                "chain_id": self.domain.chain_id,
                "verifying_contract": self.domain.verifying_contract,
            },
            "devices": [d.registry_entry() for d in self.devices if d.registered],
        }

    def summary(self) -> dict[str, Any]:
        """Counts: messages, expected accepted, rejected by reason, by stage."""
        by_reason: dict[str, int] = {}
        by_stage: dict[str, int] = {}
        for m in self.messages:
            if m.reason is not None and m.stage is not None:
                by_reason[m.reason] = by_reason.get(m.reason, 0) + 1
                by_stage[m.stage] = by_stage.get(m.stage, 0) + 1
        accepted = sum(1 for m in self.messages if m.expected == "accept")
        return {
            "messages": len(self.messages),
            "accepted": accepted,
            "rejected": len(self.messages) - accepted,
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "rejected_by_stage": dict(sorted(by_stage.items())),
            "seed": self.config.seed,
            "start_ms": self.start_ms,
        }

    def credentials(self) -> dict[str, Any]:
        """The fleet's credentials as a simulated manufacturer (``manufacturer_key(seed)``) issues
        them, and its status list's versions: every registered device holds a ``DeviceCredential``
        (subject: its did:ethr) with a bit in the list, all clear from a second before the run;
        the ``credential_revoked`` device's bit is set from its revocation on. The
        credentials file ``pipeline.credential_status.FileSource`` reads."""
        # ISSUER
        key = manufacturer_key(self.config.seed)
        issuer = did_key(key.public_key)
        list_url = manufacturer_list_url(self.config.seed)
        before_ms = self.start_ms - 1000
        created = utc_timestamp(datetime.fromtimestamp(before_ms // 1000, UTC))
        # CREDENTIALS
        registered = [d for d in self.devices if d.registered]
        issued = {}
        for index, device in enumerate(registered):
            unsecured = device_credential(
                issuer=issuer,
                subject=device_did(self.domain.chain_id or 1, bytes.fromhex(device.device_id[2:])),
                model=device.profile.name,
                serial=f"SIM-{self.config.seed}-{index}",
                firmware_hash="0x" + keccak256(f"{device.profile.name}/firmware/1".encode()).hex(),
                manufacturer="VeriStream Simulated Devices",
                valid_from=created,
            )
            secured = issue({**unsecured, "credentialStatus": status_entry(list_url, index)}, key, created=created)
            issued[device.device_id] = secured
        # STATUS LIST VERSIONS
        versions = [(before_ms, StatusList.empty())]
        for index, device in enumerate(registered):
            if device.credential_revoked_at_ms is not None:
                versions.append((device.credential_revoked_at_ms, versions[-1][1].set(index)))
        lists = []
        for from_ms, status in versions:
            valid_from = utc_timestamp(datetime.fromtimestamp(from_ms // 1000, UTC))
            unsecured = status_list_credential(list_url=list_url, issuer=issuer, status_list=status, valid_from=valid_from)
            lists.append({"from_ms": from_ms, "credential": issue(unsecured, key, created=valid_from)})
        return {"issuer": issuer, "credentials": issued, "status_lists": lists}

    def write(
        self, registry_file: Path | None, ground_truth: Path | None, credentials_file: Path | None = None
    ) -> None:
        """Write the registry (JSON), the ground truth (JSON lines + ``.summary.json``) and the
        fleet's credentials (``credentials``)."""
        if credentials_file is not None:
            credentials_file.parent.mkdir(parents=True, exist_ok=True)
            credentials_file.write_text(json.dumps(self.credentials(), indent=1, sort_keys=True) + "\n")
        if registry_file is not None:
            registry_file.parent.mkdir(parents=True, exist_ok=True)
            registry_file.write_text(json.dumps(self.registry(), indent=1, sort_keys=True) + "\n")
        if ground_truth is not None:
            ground_truth.parent.mkdir(parents=True, exist_ok=True)
            with open(ground_truth, "w") as handle:
                for m in self.messages:
                    handle.write(json.dumps(m.truth(), sort_keys=True) + "\n")
            summary = ground_truth.with_name(ground_truth.name + ".summary.json")
            summary.write_text(json.dumps(self.summary(), indent=1, sort_keys=True) + "\n")


# --- keys ------------------------------------------------------------------
def manufacturer_key(seed: int) -> SecretKey:
    """The simulated manufacturer's Ed25519 issuer key; its did:key issues the fleet's credentials."""
    return SecretKey.from_raw("ed25519", keccak256(f"veristream-sim/{seed}/manufacturer".encode()))


def manufacturer_list_url(seed: int) -> str:
    """The URL of the simulated manufacturer's status list."""
    return f"https://credentials.veristream.dev/sim/{seed}/status/1"


def derive_private_key(seed: int, scheme: str, label: str) -> bytes:
    """A private key for ``scheme`` derived from the seed and a label (valid for the curve)."""
    counter = 0
    while True:
        candidate = keccak256(f"veristream-sim/{seed}/{scheme}/{label}/{counter}".encode())
        try:
            public_key_of(scheme, candidate)
        except ValueError:  # zero or >= the group order: astronomically rare, but try the next
            counter += 1
            continue
        return candidate


def _device(
    seed: int, scheme: str, label: str, owner: str, profile: Profile, rng: random.Random
) -> SimDevice:
    private_key = derive_private_key(seed, scheme, label)
    public_key = public_key_of(scheme, private_key)
    return SimDevice(
        scheme=scheme,
        private_key=private_key,
        public_key=public_key,
        device_id=device_id_from_public_key(scheme, public_key),
        owner=owner,
        profile=profile,
        values=profile.baseline(rng),
    )


def build_fleet(config: SimulatorSourceConfig, rng: random.Random) -> list[SimDevice]:
    """The registered devices: ``devices_per_scheme`` of each scheme, round-robin over profiles."""
    profiles = list(PROFILES.values()) if config.profile == "mixed" else [PROFILES[config.profile]]
    owners_n = max(1, (config.devices_per_scheme * len(config.schemes) + 1) // 2)
    owners = [
        device_id_from_public_key(
            "secp256k1",
            public_key_of("secp256k1", derive_private_key(config.seed, "secp256k1", f"owner-{i}")),
        )
        for i in range(owners_n)
    ]
    fleet: list[SimDevice] = []
    for scheme in config.schemes:
        for i in range(config.devices_per_scheme):
            n = len(fleet)
            fleet.append(
                _device(
                    config.seed,
                    scheme,
                    f"device-{i}",
                    owners[n % owners_n],
                    profiles[n % len(profiles)],
                    rng,
                )
            )
    return fleet


# --- generation --------------------------------------------------------------
def _reading(
    device: SimDevice, seq: int, timestamp_ms: int, values: dict[str, int], domain: Domain
) -> Reading:
    unsigned = Reading(
        device.device_id, seq, timestamp_ms, canonical_json(values), b"", device.scheme
    )
    return sign_reading(unsigned, domain, device.private_key)


def _next_reading(
    device: SimDevice, rng: random.Random, timestamp_ms: int, domain: Domain
) -> Reading:
    device.seq += 1
    device.values = device.profile.step(rng, device.values)
    return _reading(device, device.seq, timestamp_ms, device.values, domain)


def _plan(config: SimulatorSourceConfig, rng: random.Random, warmup: int) -> list[str]:
    """Slot kinds in generation order: ``count`` good ones with the faults mixed in."""
    per_fault = max(1, round(config.fault_rate * config.count))
    faults = [f for f in (*FAULTS, *CREDENTIAL_FAULTS) if f in config.faults and f != "out_of_order"]
    injected = [f for f in faults for _ in range(per_fault)]
    head = min(warmup, config.count)
    tail = ["ok"] * (config.count - head) + injected
    rng.shuffle(tail)
    for late in ("revoked_device", "credential_revoked"):
        if late not in config.faults:
            continue
        # Revocation falls half-way: keep the revoked device's readings in the second half.
        revoked = [k for k in tail if k == late]
        rest = [k for k in tail if k != late]
        half = len(rest) // 2
        second = rest[half:] + revoked
        rng.shuffle(second)
        tail = rest[:half] + second
    return ["ok"] * head + tail


def simulate(config: SimulatorSourceConfig, *, start_ms: int | None = None) -> Simulation:
    """Generate a run: deterministic for the same config and start time."""
    # FLEET: registered devices, plus the unregistered, the revoked and the fast-clock one.
    rng = random.Random(config.seed)
    domain = Domain(chain_id=config.chain_id, verifying_contract=config.verifying_contract)
    start = (
        start_ms
        if start_ms is not None
        else (config.start_ms if config.start_ms is not None else DEFAULT_START_MS)
    )
    fleet = build_fleet(config, rng)
    profiles = list(PROFILES.values())
    stranger = _device(
        config.seed, config.schemes[0], "unregistered", fleet[0].owner, profiles[0], rng
    )
    stranger.registered = False
    extra: list[SimDevice] = [stranger]
    # PLAN: which slot carries a good reading and which a fault.
    plan = _plan(config, rng, warmup=len(fleet) + 1)
    slot_ms = 1000.0 / config.rate
    revoked: SimDevice | None = None
    if "revoked_device" in config.faults:
        revoked = _device(
            config.seed, config.schemes[-1], "revoked", fleet[-1].owner, fleet[-1].profile, rng
        )
        first_revoked = plan.index("revoked_device")
        revoked.revoked_at_ms = start + int(first_revoked * slot_ms)
        extra.append(revoked)
    withdrawn: SimDevice | None = None
    if "credential_revoked" in config.faults:
        withdrawn = _device(
            config.seed, config.schemes[0], "credential-revoked", fleet[0].owner, fleet[0].profile, rng
        )
        withdrawn.credential_revoked_at_ms = start + int(plan.index("credential_revoked") * slot_ms)
        extra.append(withdrawn)
    skewed: SimDevice | None = None
    if "clock_skew" in config.faults:
        # A device whose clock runs ahead: all its readings are skewed, and its
        # sequence numbers still grow, so only the skew check can reject them.
        skewed = _device(
            config.seed, config.schemes[0], "skewed-clock", fleet[0].owner, fleet[0].profile, rng
        )
        extra.append(skewed)

    # GENERATE: one message per slot, stamped with the slot's time.
    generated: list[tuple[bytes, str, Reading | None]] = []
    last_ok: list[tuple[int, bytes, Reading]] = []
    referenced: set[int] = set()  # originals of replays and duplicates stay in delivery order
    round_robin = 0
    for slot, kind in enumerate(plan):
        ts = start + int(slot * slot_ms)
        if kind == "ok" and slot == 0 and revoked is not None:
            reading = _next_reading(revoked, rng, ts, domain)
            generated.append((encode_reading(reading), "ok", reading))
            continue
        if kind == "ok" and slot == 1 and withdrawn is not None:
            reading = _next_reading(withdrawn, rng, ts, domain)
            generated.append((encode_reading(reading), "ok", reading))
            continue
        device = fleet[round_robin % len(fleet)]
        round_robin += 1
        if kind in ("replayed_seq", "duplicate") and not last_ok:
            kind = "ok"  # tiny runs: nothing good sent yet to replay or repeat
        if kind == "ok":
            reading = _next_reading(device, rng, ts, domain)
            raw = encode_reading(reading)
            last_ok.append((len(generated), raw, reading))
            generated.append((raw, kind, reading))
        elif kind == "bad_signature":
            reading = _next_reading(device, rng, ts, domain)
            altered = dict(device.values)
            name = device.profile.fields[0].name
            altered[name] = (
                altered[name] + 1
                if altered[name] < device.profile.fields[0].high
                else altered[name] - 1
            )
            reading = reading._replace(payload=canonical_json(altered))
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "replayed_seq":
            # An earlier good reading of some device, re-signed with new content and time.
            original, _, old = last_ok[rng.randrange(len(last_ok))]
            referenced.add(original)
            owner = next(d for d in (*fleet, *extra) if d.device_id == old.device_id)
            values = owner.profile.step(rng, owner.values)
            reading = _reading(owner, old.seq, ts, values, domain)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "duplicate":
            original, raw, reading = last_ok[-1]
            referenced.add(original)
            generated.append((raw, kind, reading))
        elif kind == "unknown_device":
            reading = _next_reading(stranger, rng, ts, domain)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "revoked_device":
            assert revoked is not None
            reading = _next_reading(revoked, rng, ts, domain)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "credential_revoked":
            assert withdrawn is not None
            reading = _next_reading(withdrawn, rng, ts, domain)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "clock_skew":
            assert skewed is not None
            reading = _next_reading(skewed, rng, ts + config.clock_skew_ms, domain)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "malformed_json":
            reading = _next_reading(device, rng, ts, domain)
            raw = encode_reading(reading)
            generated.append((raw[: len(raw) // 2], kind, None))
        elif kind == "oversized":
            device.seq += 1
            values = {**device.values, "padding": "x" * (config.max_payload_bytes + 1)}
            unsigned = Reading(
                device.device_id, device.seq, ts, canonical_json(values), b"", device.scheme
            )
            reading = sign_reading(unsigned, domain, device.private_key)
            generated.append((encode_reading(reading), kind, reading))
        elif kind == "implausible":
            device.seq += 1
            values = device.profile.implausible(rng, device.values)
            reading = _reading(device, device.seq, ts, values, domain)
            generated.append((encode_reading(reading), kind, reading))
        else:  # pragma: no cover - _plan only yields the kinds above
            raise AssertionError(kind)

    # DELIVERY ORDER: a delayed message moves behind the next 1..3 messages.
    keys = [float(i) for i in range(len(generated))]
    delayed: set[int] = set()
    if "out_of_order" in config.faults:
        per_fault = max(1, round(config.fault_rate * config.count))
        candidates = [
            i
            for i, (_, kind, _) in enumerate(generated)
            if kind == "ok" and i >= len(fleet) and i not in referenced
        ]
        for i in rng.sample(candidates, min(per_fault, len(candidates))):
            keys[i] = i + rng.randint(1, OUT_OF_ORDER_WINDOW) + 0.5
            delayed.add(i)
    order = sorted(range(len(generated)), key=keys.__getitem__)

    # GROUND TRUTH: each message with its send time and expected outcome.
    messages: list[SimMessage] = []
    send_ms = start
    for position, gen_index in enumerate(order):
        raw, kind, reading = generated[gen_index]
        # A message is never sent before it is stamped (messages overtaken by a
        # delayed one would otherwise be), except for the deliberately skewed clock.
        send_ms = max(send_ms, start + int(position * slot_ms))
        if reading is not None and kind != "clock_skew":
            send_ms = max(send_ms, reading.timestamp_ms)
        label = "out_of_order" if gen_index in delayed else kind
        reason, stage = FAULT_OUTCOMES.get(kind, (None, None))
        messages.append(
            SimMessage(
                index=position,
                raw=raw,
                kind=label,
                expected="accept" if reason is None else "reject",
                reason=reason,
                stage=stage,
                device_id=reading.device_id if reading is not None else None,
                seq=reading.seq if reading is not None else None,
                timestamp_ms=reading.timestamp_ms if reading is not None else None,
                send_ms=send_ms,
            )
        )
    return Simulation(config, domain, (*fleet, *extra), tuple(messages), start)


# --- delivery ------------------------------------------------------------------
def pace(messages: Sequence[SimMessage], start_ms: int, rate_limited: bool) -> Iterable[SimMessage]:
    """Yield messages, sleeping until each one's send time when ``rate_limited``."""
    wall0 = time.monotonic()
    for m in messages:
        if rate_limited:
            delay = (m.send_ms - start_ms) / 1000.0 - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(delay)
        yield m


def write_jsonl(messages: Iterable[SimMessage], path: Path) -> int:
    """Write raw messages one per line (the replay format); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as handle:
        for m in messages:
            handle.write(m.raw.replace(b"\n", b" ") + b"\n")
            n += 1
    return n


def deliver(
    simulation: Simulation,
    target: str,
    *,
    output: Path | None = None,
    url: str | None = None,
    mqtt_config: Any = None,
    topic_prefix: str = "veristream/readings",
    realtime: bool = False,
    batch_size: int = 1,
) -> dict[str, Any]:
    """Send a simulation's messages to ``file``, ``http``, ``ws`` or ``mqtt``; returns what the target said.

    ``realtime`` paces messages at their send times (the configured rate);
    otherwise they go as fast as the target takes them.
    """
    paced = pace(simulation.messages, simulation.start_ms, realtime)
    if target == "file":
        if output is None:
            raise InputRejected("target file needs an output path")
        return {"target": "file", "path": str(output), "messages": write_jsonl(paced, output)}
    if target in ("http", "ws") and url is None:
        raise InputRejected(f"target {target} needs a url")
    if target == "http":
        from veristream.connectors.sources.http import post_messages

        assert url is not None
        return {
            "target": "http",
            **post_messages(url, (m.raw for m in paced), batch_size=batch_size),
        }
    if target == "ws":
        from veristream.connectors.sources.websocket import send_messages

        assert url is not None
        acks = send_messages(url, [m.raw for m in paced])
        return {
            "target": "ws",
            "messages": len(acks),
            "accepted": sum(1 for a in acks if a.get("accepted")),
        }
    if target == "mqtt":
        from veristream.connectors.sources.mqtt import publish_messages

        if mqtt_config is None:
            raise InputRejected("target mqtt needs a broker configuration")
        pairs = ((f"{topic_prefix}/{m.device_id or 'unknown'}", m.raw) for m in paced)
        return {"target": "mqtt", "published": publish_messages(mqtt_config, pairs)}
    raise InputRejected(f"unknown target {target!r}; use file, http, ws or mqtt")
