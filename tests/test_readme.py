"""The README's "Bring your own circuit" example runs as written, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def first_python_block(section: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    return re.search(r"```python\n(.*?)```", text[start:], re.DOTALL).group(1)


def test_bring_your_own_circuit_example_runs_as_written(tmp_path):
    script = tmp_path / "ladder.py"
    script.write_text(first_python_block("Bring your own circuit"))
    completed = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert re.search(r"ladder: accuracy \d\.\d{3}; logistic regression: \d\.\d{3}", completed.stdout), completed.stdout
    assert (tmp_path / "ladder_model").is_dir()  # the checkpoint it saves
