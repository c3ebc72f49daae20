"""pysalient.utils.atomic: all-or-nothing writes with ordinary permissions."""

from __future__ import annotations

import json
import os

import pytest

from pysalient.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_json


def test_writes_replace_whole_files_with_default_permissions(tmp_path) -> None:
    target = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"first")
    atomic_write_bytes(target, b"second", durable=False)
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    atomic_write_json(tmp_path / "b.json", {"x": [1, 2]}, sort_keys=True)
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = atomic_write_bytes(tmp_path / "c.bin", b"old")

    def half_then_fail(handle) -> None:
        handle.write(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["c.bin"]
