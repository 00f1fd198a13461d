"""Atomic writes: whole files or none, with the mode a plain open() gives (a teammate can read the results)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from lwcompress import io


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002, 0o077])
def test_atomic_writes_take_the_umask_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        written = [io.write_json(tmp_path / "s.json", {"a": 1}), io.write_text(tmp_path / "t.csv", "x\n"),
                   io.torch_save(tmp_path / "m.pt", {"w": torch.ones(2)})]  # fmt: skip
        with open(tmp_path / "plain", "w"):
            pass
        assert os.umask(umask) == umask  # the writes left the umask as they found it
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert plain == 0o666 & ~umask
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: plain for p in written}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "plain", "s.json", "t.csv"]  # no temp file left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = io.write_text(tmp_path / "summary.json", "old")

    def fail(f) -> None:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io._atomic(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]
