"""State that spans epochs, committed atomically with each epoch's manifest.

``JobState`` is what the next epoch needs from the previous ones: the replay
guard's per-device sequence high-water marks, the cumulative reward of every
beneficiary (the reward root commits to these running totals), the carried
reward remainder, and the last manifest's CID. It is a value: each epoch maps
``(state, readings) -> state'``.

Durability: ``commit_checkpoint`` writes ONE file holding both the new state
and the epoch's manifest (temp file, fsync, rename, fsync of the folder), so a
crash leaves either the old checkpoint or the new one, never a manifest
without its state. On restart the first closed epoch after the checkpoint is
simply recomputed; determinism makes its roots and CIDs the same as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.pipeline.manifest import Manifest, manifest_from_json
from veristream.provers.durable import write_atomically
from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected

CHECKPOINT_FILE = "checkpoint.json"
HISTORY_DIR = "epochs"


@dataclass(frozen=True, slots=True)
class JobState:
    """Cross-epoch state after ``epoch`` (``-1``: before the first epoch)."""

    epoch: int = -1
    high_water: Mapping[str, int] = field(default_factory=dict)
    cumulative: Mapping[bytes, int] = field(default_factory=dict)
    carry: int = 0
    manifest_cid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-ready form (accounts as 0x hex, sorted by the serialiser)."""
        return {
            "epoch": self.epoch,
            "high_water": dict(self.high_water),
            "cumulative": {"0x" + a.hex(): str(v) for a, v in self.cumulative.items()},
            "carry": str(self.carry),
            "manifest_cid": self.manifest_cid,
        }

    def to_json(self) -> bytes:
        """The state as canonical JSON (amounts as decimal strings: they can exceed 2^53)."""
        return canonical_json(self.to_dict(), integers_only=True)


def state_from_dict(raw: Mapping[str, Any]) -> JobState:
    """A state back from ``JobState.to_dict``; ``ValueError`` when malformed."""
    try:
        return JobState(
            epoch=int(raw["epoch"]),
            high_water={str(d): int(s) for d, s in raw["high_water"].items()},
            cumulative={bytes.fromhex(a[2:]): int(v) for a, v in raw["cumulative"].items()},
            carry=int(raw["carry"]),
            manifest_cid=raw.get("manifest_cid"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputRejected(f"malformed job state: {error}") from None


def state_from_json(data: bytes) -> JobState:
    """A state back from its canonical JSON."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputRejected(f"job state is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise InputRejected("job state must be a JSON object")
    return state_from_dict(raw)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The committed pair: the state after an epoch and that epoch's manifest."""

    state: JobState
    manifest: Manifest | None
    manifest_cid: str | None

    def to_json(self) -> bytes:
        """Both as one canonical JSON document (what is written atomically)."""
        manifest = json.loads(self.manifest.to_json()) if self.manifest is not None else None
        return canonical_json(
            {"state": self.state.to_dict(), "manifest": manifest, "manifest_cid": self.manifest_cid},
            integers_only=True,
        )


def commit_checkpoint(work_dir: Path, checkpoint: Checkpoint) -> None:
    """Durably replace the job's checkpoint; also keeps a per-epoch copy for ``verify``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    data = checkpoint.to_json()
    if checkpoint.manifest is not None:
        history = work_dir / HISTORY_DIR
        history.mkdir(exist_ok=True)
        write_atomically(history / f"{checkpoint.manifest.epoch:012d}.json", data)
    write_atomically(work_dir / CHECKPOINT_FILE, data)


def _parse_checkpoint(data: bytes, source: str) -> Checkpoint:
    try:
        raw = json.loads(data)
        state = state_from_dict(raw["state"])
        manifest_raw = raw.get("manifest")
        manifest = manifest_from_json(canonical_json(manifest_raw, integers_only=True)) if manifest_raw else None
        return Checkpoint(state, manifest, raw.get("manifest_cid"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputRejected(f"checkpoint {source} is unreadable: {error}") from None


def load_checkpoint(work_dir: Path) -> Checkpoint:
    """The last committed checkpoint, or the empty one before the first epoch."""
    path = work_dir / CHECKPOINT_FILE
    if not path.exists():
        return Checkpoint(JobState(), None, None)
    return _parse_checkpoint(path.read_bytes(), str(path))


def load_epoch_checkpoint(work_dir: Path, epoch: int) -> Checkpoint | None:
    """The checkpoint committed right after ``epoch``, if this work directory has it."""
    path = work_dir / HISTORY_DIR / f"{epoch:012d}.json"
    if not path.exists():
        return None
    return _parse_checkpoint(path.read_bytes(), str(path))
