"""Malformed input at volume (hypothesis) against the ingest edge's parsers.

Targets: the wire decoder (``connectors/envelope.py``), the job spec loader
(``pipeline/jobspec.py``), the framing reader and the ingest log's recovery
(``connectors/framing.py``, ``connectors/ingest_log.py``), and the CAR reader
(``connectors/ipfs/car.py``). The property is the same for each: any input is
either accepted or refused with VeriStream's typed error and a reason; nothing
else escapes (no ``KeyError``, ``struct.error``, ``RecursionError``...).
Each target also checks what must hold of what it accepts (the fast envelope
parser agrees with the careful one; the framing map covers every byte once).

``PROPERTIES`` is what the tests run briefly; ``run`` runs them at volume and
reports inputs/s beside hypothesis generating the same inputs without the
target (the ratio is what the target costs), with the rejections by reason.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.measure import comparison
from veristream.connectors.envelope import (
    EnvelopeError,
    encode_reading,
    parse_reading,
    parse_reading_fast,
)
from veristream.connectors.framing import HEADER, frame, scan, survey
from veristream.connectors.ingest_log import IngestLog
from veristream.connectors.ipfs.car import iter_blocks, read_header, write_car
from veristream.connectors.ipfs.cid import cid_to_bytes
from veristream.connectors.ipfs.unixfs import Block, cid_of
from veristream.pipeline.jobspec import JobSpecError, load_job
from veristream.provers.errors import InputRejected, StoreError
from veristream.provers.readings import Reading

REPO = Path(__file__).resolve().parent.parent

# --- inputs ---------------------------------------------------------------------

_VALID = encode_reading(
    Reading("0x" + "ab" * 20, 7, 1_767_225_600_000, b'{"temp_c_x100":2150}', b"\x01" * 65)
)
_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["device_id", "seq", "timestamp_ms", "payload", "signature", "scheme"]


@st.composite
def _mutated_envelope(draw: st.DrawFn) -> bytes:
    """A valid envelope with one field replaced, removed or added."""
    obj = json.loads(_VALID)
    key = draw(st.sampled_from([*_FIELDS, "extra"]))
    action = draw(st.sampled_from(["replace", "remove", "hexlike"]))
    if action == "remove":
        obj.pop(key, None)
    elif action == "hexlike":
        obj[key] = "0x" + draw(st.text(alphabet="0123456789abcdefABCDEFxg ", max_size=140))
    else:
        obj[key] = draw(_JSON)
    return json.dumps(obj).encode()


@st.composite
def _flipped(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes changed, cut or inserted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


ENVELOPES = st.binary(max_size=512) | _mutated_envelope() | _flipped(_VALID) | _JSON.map(
    lambda v: json.dumps(v).encode()
)

_JOB = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())


@st.composite
def _mutated_job(draw: st.DrawFn) -> str:
    """The weather example with one key (at any depth) replaced or removed, as YAML."""
    job = json.loads(json.dumps(_JOB))
    node: Any = job
    for _ in range(draw(st.integers(0, 3))):
        if not isinstance(node, dict) or not node:
            break
        child = node[draw(st.sampled_from(sorted(node)))]
        if not isinstance(child, dict):
            break
        node = child
    if isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(_JSON)
    return yaml.safe_dump(job)


JOB_TEXTS = st.text(max_size=300) | _JSON.map(yaml.safe_dump) | _mutated_job()

_FRAMED = b"".join(frame(b"record %d " % i + b"x" * (i * 7 % 50 + 17)) for i in range(8))
SEGMENTS = (
    st.binary(max_size=600)
    | _flipped(_FRAMED)
    | st.lists(st.binary(min_size=0, max_size=40), max_size=6).map(
        lambda bodies: b"".join(HEADER.pack(len(b), zlib.crc32(b)) + b for b in bodies)
    )
)


def _car_bytes() -> bytes:
    data = b"a CAR for the fuzzer " * 50
    block = Block(cid_to_bytes(cid_of(data)), data)
    out = io.BytesIO()
    write_car([block.cid], [block], out)
    return out.getvalue()


_CAR = _car_bytes()
CARS = st.binary(max_size=600) | _flipped(_CAR)

# --- checks ----------------------------------------------------------------------

_ENVELOPE_REASONS = frozenset(
    {
        "missing",
        "not_hex",
        "out_of_range",
        "too_large",
        "not_json",
        "wrong_type",
        "unknown_scheme",
        "unexpected",
        "empty",
    }
)


def check_envelope(raw: bytes) -> str:
    """Accepted, or ``EnvelopeError`` with a known reason; the fast parser agrees with the careful one."""
    fast = parse_reading_fast(raw)
    try:
        reading = parse_reading(raw)
    except EnvelopeError as error:
        assert error.reason in _ENVELOPE_REASONS, error.reason
        assert isinstance(error.field, str) and error.field
        assert fast is None, f"the fast parser accepted what parse_reading refuses: {raw!r}"
        return f"envelope:{error.reason}"
    assert fast is None or fast == reading, f"the parsers disagree on {raw!r}"
    return "accepted"


def check_job(text: str, scratch: Path) -> str:
    """A job spec text is accepted or refused with ``JobSpecError`` naming each problem."""
    path = scratch / "job.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_job(path)
    except JobSpecError as error:
        assert error.problems and all(isinstance(f, str) for f, _ in error.problems)
        return "job:" + error.problems[0][0].split(".")[0].split("[")[0]
    return "accepted"


def check_segment(data: bytes, scratch: Path) -> str:
    """The framing map covers every byte once; the log opens it or refuses it with a typed error."""
    mapped = survey(data)
    covered = sum(HEADER.size + len(body) for _, body in mapped.records)
    covered += sum(d.end - d.start for d in mapped.damaged) + mapped.torn_tail
    assert covered == len(data) == mapped.size
    records, good = scan(data)
    assert [body for _, body in mapped.records[: len(records)]] == records
    assert good <= len(data)
    directory = scratch / f"log-{time.monotonic_ns()}"
    (directory / "segments").mkdir(parents=True)
    (directory / "segments" / "epoch-000000000000.log").write_bytes(data)
    try:
        log = IngestLog(directory, 60_000, 0)
    except (StoreError, InputRejected) as error:
        return f"segment:{type(error).__name__}"
    try:
        log.advance_clock(10**12)
        for epoch in log.closed_epochs():
            log.read_records(epoch)
    finally:
        log.close()
    return "segment:damaged" if mapped.damaged else "accepted"


def check_car(data: bytes) -> str:
    """A CAR is read (every block verified) or refused with ``InputRejected`` / ``StoreError``."""
    stream = io.BytesIO(data)
    try:
        read_header(stream)
        for _ in iter_blocks(stream):
            pass
    except (InputRejected, StoreError) as error:
        return f"car:{type(error).__name__}"
    return "accepted"


# --- running -----------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One fuzzed target: its inputs and its check (``scratch`` is a temporary directory)."""

    name: str
    inputs: st.SearchStrategy[Any]
    check: Callable[[Any, Path], str]


PROPERTIES = (
    Property("wire envelope decoder", ENVELOPES, lambda raw, _: check_envelope(raw)),
    Property("job spec loader", JOB_TEXTS, check_job),
    Property("framing reader + log recovery", SEGMENTS, check_segment),
    Property("CAR reader", CARS, lambda data, _: check_car(data)),
)


def fuzz(prop: Property, examples: int, *, only_generate: bool = False) -> dict[str, Any]:
    """Run ``prop`` on ``examples`` inputs; returns the verdict counts and inputs/s.

    A property that fails raises hypothesis's error with the shrunk input.
    """
    verdicts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="vs-fuzz-") as tmp:
        scratch = Path(tmp)

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(prop.inputs)
        def body(value: Any) -> None:
            verdicts["generated"] += 1
            if not only_generate:
                verdicts[prop.check(value, scratch)] += 1

        start = time.perf_counter()
        body()
        seconds = time.perf_counter() - start
    generated = verdicts.pop("generated")
    return {"inputs": generated, "rate": generated / seconds, "verdicts": dict(verdicts)}


def run(quick: bool = False) -> dict[str, Any]:
    """Every property at volume: rows of inputs/s vs generation alone, and verdicts by reason."""
    examples = 300 if quick else 5_000
    rows = []
    verdicts = {}
    for prop in PROPERTIES:
        ours = fuzz(prop, examples)
        baseline = fuzz(prop, examples, only_generate=True)
        row = comparison(
            f"fuzz {prop.name} ({ours['inputs']} inputs, 0 crashes)",
            ours["rate"],
            baseline["rate"],
            "inputs/s",
            "hypothesis generation only",
        )
        rows.append(row)
        verdicts[prop.name] = ours["verdicts"]
    return {"fuzz": rows, "fuzz_verdicts": verdicts}
