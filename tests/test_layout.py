"""The package's layers: each module imports only from its own layer or the ones below it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agents.cli.registry import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
LAYERS = (
    ("arith_gym",),
    ("agents", "agents.registry", "agents.kl", "agents.rundir", "agents.settings"),
    ("agents.lm",),
    ("agents.evaluation",),
    ("agents.rl",),
    ("agents.sb3", "agents.trl"),
    ("agents.backends",),
    ("agents.experiments", "agents.bench"),
    ("agents.cli",),
)
"""From the bottom up; ``agents`` alone is the package's ``__init__`` (``MissingExtra``)."""


def layer_of(module: str) -> int | None:
    """The layer of an ``agents``/``arith_gym`` module (the longest matching prefix), else None."""
    best, index = -1, None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), level
    return index


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    pairs = []
    for package in ("arith_gym", "agents"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            pairs.append((name, path))
    return pairs


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_imports_go_down_the_layers(module, path):
    own = layer_of(module)
    assert own is not None, f"{module} is in no layer"
    for imported in imports_of(path):
        level = layer_of(imported)
        if level is not None and imported != "agents":
            assert level <= own, f"{module} (layer {own}) imports {imported} (layer {level})"
        if module.startswith("arith_gym"):
            assert imported.split(".")[0] not in ("torch", "agents", "transformers"), imported


def test_every_cli_flag_has_help():
    parser = build_parser("all")
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) == set(COMMANDS)
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"arith-rl {name} {action.option_strings or action.dest} has no help"


def test_no_reference_outside_the_repository():
    """The docs and the code cite docs/format.md, not a specification outside the repository."""
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *[p for _, p in modules()]]:
        assert not re.search(r"\bshared/", path.read_text()), path


def test_documentation_links_resolve_inside_the_repository():
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert resolved.exists(), f"{page.name}: broken link {target}"
            assert ROOT in resolved.parents, f"{page.name}: {target} is outside the repository"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation dropped, spaces to -."""
    headings = [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_documentation_anchors_name_a_heading_of_their_page():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            file, _, anchor = target.partition("#")
            if target.startswith(("http://", "https://")) or not anchor:
                continue
            linked = page if not file else (page.parent / file)
            if linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{page.name}: no heading for {target}"


def test_the_lowest_versions_script_pins_the_declared_lower_bounds():
    tomllib = pytest.importorskip("tomllib")
    declared = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, bound = requirement.partition(">=")
        declared[name.strip().lower()] = bound.strip()
    pinned = {}
    for line in (ROOT / ".ci" / "lowest-versions.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower()] = version
    for name, bound in declared.items():
        if name != "torch":  # its only CPU build here is installed first, as in .ci/run
            assert pinned.get(name) == bound, (
                f"{name}: declared >={bound}, .ci/lowest-versions.txt {pinned.get(name)}"
            )
