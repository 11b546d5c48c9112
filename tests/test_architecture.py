"""The data flows one way and each concept has one home: the library never imports a stage, and a stage never imports
another stage (what two stages share lives in the library). Checked on the import statements of every module."""

import ast
from pathlib import Path

import pytest

from helpers import REPO_ROOT

STAGES = ("data_prep", "train", "eval", "scan")


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports, at any depth of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("ghostprobe"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_library_imports_no_stage(path):
    assert not imported_packages(path) & set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage):
    for path in modules(stage):
        others = imported_packages(path) & (set(STAGES) - {stage})
        assert not others, f"{path.relative_to(REPO_ROOT)} imports {sorted(others)}"


def test_scripts_import_the_library_not_the_stages_entry_points():
    """scripts/ may drive a stage's functions (benchmarks do), but never through another script."""
    for path in modules("scripts"):
        assert "scripts" not in imported_packages(path), path
