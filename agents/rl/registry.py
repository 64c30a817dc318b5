"""Named registries of the RL pieces, and the plug-in loader that fills them from a file.

An algorithm is a named advantage estimator + policy loss + loss aggregation (in the manner of
verl's registries). The built-in pieces register themselves here exactly as a researcher's own
file does::

    from agents.rl import register_advantage

    @register_advantage("my_baseline", needs_groups=True)
    def my_baseline(inputs):
        ...

and ``arith-rl train --plugin my_methods.py --algo ...`` loads that file (in every worker
process of ``compare`` too) before any name is looked up. A name registered twice is an
error; looking up an unknown name is an error that lists the registered ones.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from agents.registry import Registry

__all__ = ["Registry", "load_plugin", "load_plugins"]


_LOADED: dict[Path, str] = {}
"""Plug-in files loaded in this process (resolved path -> module name): each runs once."""


def load_plugin(path: str | Path) -> None:
    """Run the Python file ``path`` once in this process, so that its registrations take effect.

    Loading the same file again does nothing (a Ray worker may run several jobs). A missing file
    or an error inside it is a one-line ``ValueError`` naming the file.
    """
    resolved = Path(path).expanduser().resolve()
    if resolved in _LOADED:
        return
    if not resolved.is_file() or resolved.suffix != ".py":
        raise ValueError(f"--plugin {path}: not a Python file")
    module_name = f"arith_gym_plugin_{len(_LOADED)}_{resolved.stem}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 -- any error in a user's file is reported as one line
        del sys.modules[module_name]
        raise ValueError(f"--plugin {path}: {type(err).__name__}: {err}") from err
    except SystemExit as err:  # sys.exit(0) in a plug-in would end the run with rc 0 and no output
        del sys.modules[module_name]
        raise ValueError(f"--plugin {path}: the file called sys.exit({err.code!r}) while loading") from None
    _LOADED[resolved] = module_name


def load_plugins(paths: tuple[str, ...] | list[str]) -> None:
    """:func:`load_plugin` for each path, in order."""
    for path in paths:
        load_plugin(path)
