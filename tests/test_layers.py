"""The layer contract of design.md section 4 (pyproject's [tool.importlinter]) holds, and it
is a real check: an upward import planted in a copy of the tree breaks it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own tool on our own tree)
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "daemon", tmp_path / "daemon", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    model = tree / "daemon" / "domain" / "model.py"
    model.write_text(model.read_text() + "\nfrom daemon.runtime import tracker  # planted\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "daemon.domain is not allowed to import daemon.runtime" in result.stdout


def test_the_daemon_may_not_import_the_emulator(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    app = tree / "daemon" / "app.py"
    app.write_text(app.read_text() + "\nfrom daemon.emulator import cloud  # planted\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "daemon.app -> daemon.emulator" in result.stdout


def layout_rows() -> dict[str, str]:
    """README's Layout table: the first column's `daemon/<package>/` -> the row's text."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `(daemon/[a-z_]+/|daemon/[a-z_]+\.py)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_the_readme_layout_names_every_package_and_module_of_the_tree() -> None:
    """The Layout table is checked against the tree: a module nobody wrote down fails, and so
    does a row naming a module that is gone (`name`: is how a row names one)."""
    rows = layout_rows()
    packages = sorted(p for p in (ROOT / "daemon").iterdir() if (p / "__init__.py").exists())
    assert sorted(rows) == sorted([f"daemon/{p.name}/" for p in packages] + ["daemon/app.py"]), (
        "README's Layout table and daemon/'s packages differ"
    )
    for package in packages:
        row = rows[f"daemon/{package.name}/"]
        modules = {m.stem for m in package.glob("*.py") if m.stem != "__init__"}
        named = set(re.findall(r"`([a-z_0-9]+)`:", row))
        assert modules - named == set(), f"daemon/{package.name}/: not in README's Layout"
        assert named - modules == set(), f"daemon/{package.name}/: README names what is gone"
