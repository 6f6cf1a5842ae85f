"""The import layers of DESIGN.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
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
    code = "import sys, hqray, hqray.training; assert 'ray' not in sys.modules, 'ray was imported'"
    completed = subprocess.run(["python", "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
