"""Crash-safe checkpoint directory swaps."""

from pathlib import Path

import pytest

from agents.rundir import find_dir, write_dir


def _write(final: Path, text: str) -> None:
    with write_dir(final) as tmp:
        (tmp / "state.txt").write_text(text)


def test_write_dir_creates_then_replaces(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    _write(final, "one")
    _write(final, "two")
    assert (final / "state.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    _write(final, "one")
    with pytest.raises(RuntimeError), write_dir(final) as tmp:
        (tmp / "state.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (final / "state.txt").read_text() == "one"
    _write(final, "two")  # the leftover .tmp does not block the next save
    assert (final / "state.txt").read_text() == "two"


def test_find_dir_falls_back_to_the_old_copy_mid_swap(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"
    _write(final, "one")
    final.rename(tmp_path / "ckpt.old")  # the instant between the two renames
    assert (find_dir(final) / "state.txt").read_text() == "one"
    _write(final, "two")
    assert find_dir(final) == final and not (tmp_path / "ckpt.old").exists()
