"""The import layers of DESIGN.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    executable = shutil.which("lint-imports")
    assert executable, "import-linter is part of the test extra"
    completed = subprocess.run([executable, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Contracts: 2 kept, 0 broken" in completed.stdout


def test_the_core_imports_without_ray():
    # Every module of the Ray-free layers, imported for real (the packages load their names lazily).
    code = ("import importlib, pkgutil, sys\n"
            "for package in ('hqray.data', 'hqray.quantum', 'hqray.models', 'hqray.training'):\n"
            "    module = importlib.import_module(package)\n"
            "    for info in pkgutil.walk_packages(module.__path__, package + '.'):\n"
            "        importlib.import_module(info.name)\n"
            "assert 'hqray.training.cv' in sys.modules and 'hqray.quantum.engine' in sys.modules\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_ruff_finds_nothing():
    completed = subprocess.run([sys.executable, "-m", "ruff", "check", "hqray", "tests", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
