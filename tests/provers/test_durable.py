"""Files replaced whole: new bytes or old, no temp files left, the mode a plain open() gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from veristream.provers.durable import write_atomically


def test_replaces_the_file_with_the_mode_open_would_give(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "state.json"]


def test_a_failed_write_keeps_the_old_bytes_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def broken(handle: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomically(target, broken)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_writer_function_and_a_separate_temp_dir(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    target = tmp_path / "block"
    write_atomically(target, lambda handle: handle.write(b"abc"), durable=False, tmp_dir=scratch)
    assert target.read_bytes() == b"abc"
    assert list(scratch.iterdir()) == []
