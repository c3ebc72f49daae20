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


class _Usage:
    def __init__(self, free: int) -> None:
        self.total, self.used, self.free = 10 * free + 1, 0, free


@pytest.mark.parametrize("raised", [RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64 vs 0"), None])
def test_a_write_that_fails_on_a_full_disk_says_so_and_keeps_the_old_file(tmp_path, monkeypatch, raised) -> None:
    import errno
    import shutil

    import torch

    from pysalient.engine.checkpoint import atomic_torch_save
    from pysalient.utils import atomic

    target = atomic_torch_save({"iteration": 1}, tmp_path / "last.pth")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(free=4096))

    def failing_save(obj, handle) -> None:
        handle.write(b"partial")
        raise raised if raised is not None else OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match=r"No space left on device while writing .*last\.pth \(last\.pth is unchanged\)"):
        atomic_torch_save({"iteration": 2}, target)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.pth"]
    monkeypatch.undo()
    assert torch.load(target)["iteration"] == 1
    # With room on the disk, the writer's own error is what the caller sees.
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(free=atomic.FULL_DISK_BYTES * 4))
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError if raised is not None else OSError) as caught:
        atomic_torch_save({"iteration": 3}, tmp_path / "new.pth")
    assert "while writing" not in str(caught.value) or raised is None
