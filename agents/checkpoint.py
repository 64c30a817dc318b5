"""Crash-safe checkpoint directories: write everything aside, then swap it in.

``write_dir(final)`` yields a fresh temporary directory next to ``final``; when the block
ends without error the old ``final`` is moved aside, the new one renamed into place, and the
old one deleted. At every instant a complete checkpoint exists at ``final`` or, during the
swap, at ``final.old``, which ``find_dir`` falls back to.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def write_dir(final: Path) -> Iterator[Path]:
    """Context manager: fill the yielded directory; it replaces ``final`` on success."""
    final = Path(final)
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    if tmp.exists():  # left by a crash mid-write: never complete, safe to drop
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def find_dir(final: Path) -> Path:
    """``final``, or ``final.old`` if a crash interrupted the swap of :func:`write_dir`."""
    final = Path(final)
    old = final.with_name(final.name + ".old")
    return old if not final.exists() and old.exists() else final
