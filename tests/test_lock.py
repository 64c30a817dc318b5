"""requirements.lock is the project's own closure, with one torch pin any index can serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as the lock
ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", re.M)


def _pins(name: str) -> dict[str, Version]:
    return {canonicalize_name(n): Version(v) for n, v in PIN.findall((ROOT / name).read_text())}


def test_the_lock_pins_every_declared_dependency_and_extra_within_its_range():
    lock = _pins("requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [
        r for extra in ("dev", "ray", "trl") for r in project["optional-dependencies"][extra]
    ]
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, name
        assert requirement.specifier.contains(lock[name], prereleases=True), (name, lock[name])


def test_torch_is_pinned_without_a_local_build_label_and_without_its_cuda_runtime():
    lock = _pins("requirements.lock")
    assert lock["torch"] == Version("2.13.0") and lock["torch"].local is None
    assert all(version.local is None for version in lock.values())
    cuda = _pins("requirements-cuda.lock")
    assert cuda and all(n.startswith(("nvidia-", "cuda-")) or n == "triton" for n in cuda)
    assert not set(cuda) & set(lock)


def test_the_lock_holds_no_machine_leftovers():
    lock = _pins("requirements.lock")
    for stranger in ("awscli", "boto3", "cfn-lint", "flask", "moto"):
        assert stranger not in lock


def test_the_readme_gives_cpu_and_cuda_install_lines_and_ci_installs_the_lock():
    readme = (ROOT / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    assert "pip install -r requirements.lock" in readme and "requirements-cuda.lock" in readme
    assert re.search(r"pip install (--quiet )?-r requirements\.lock", (ROOT / ".ci" / "run").read_text())
