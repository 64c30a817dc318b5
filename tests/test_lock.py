"""requirements.lock is the dependency closure of pyproject.toml (with its extras), nothing more."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev", "ray", "trl")


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def _closure() -> set[str]:
    """Every distribution the installed arith-gym needs with its extras, following installed metadata."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    pending += [Requirement(text) for extra in EXTRAS for text in project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            pytest.skip(f"{requirement.name} is not installed here: the closure cannot be walked")
        for text in requires:
            dependency = Requirement(text)
            active = [{"extra": extra} for extra in (*requirement.extras, "")]
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in active):
                pending.append(dependency)
    return seen


def test_the_lock_holds_exactly_the_projects_closure():
    locked = set(_locked())
    closure = _closure() - {"setuptools"} | ({"setuptools"} & locked)  # a build tool some packages name
    assert not locked - closure, (
        f"in the lock but needed by nothing of the project: {sorted(locked - closure)}"
    )
    assert not closure - locked, f"needed but not locked: {sorted(closure - locked)}"


def test_every_pin_is_exact_and_torch_carries_no_build_label():
    for name, version in _locked().items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), f"{name}=={version}"
    assert _locked()["torch"] == "2.13.0"  # +cpu resolves only on PyTorch's own index


def test_the_readme_gives_cpu_and_cuda_install_lines_from_the_lock():
    readme = (ROOT / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    assert "pip install -r requirements.lock" in readme
    assert re.search(r"pip install (--quiet )?-r requirements\.lock", (ROOT / ".ci" / "run").read_text())
