"""The layer contract of design.md section 4 (pyproject's [tool.importlinter]) holds, and it
is a real check: an upward import planted in a copy of the tree breaks it."""

from __future__ import annotations

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
