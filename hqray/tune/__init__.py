"""Ray Tune studies: validated study files and the sweep runner (`hqray sweep`).

Study files are validated without importing Ray (``load_study``), so a malformed study
fails before any cluster starts; :func:`run_study` (imported on first use) runs it.

**Example**

>>> from hqray.tune import StudyConfig
>>> StudyConfig(name="demo", dataset={"name": "iris"}, generations=["g0", "qsvm"]).space_for("qsvm")["C"]
{'loguniform': [0.1, 100.0]}
"""

from typing import Any

from hqray.tune.study import DatasetSpec, Resources, StudyConfig, load_study

__all__ = ["DatasetSpec", "Resources", "StudyConfig", "load_study", "run_study", "SweepResult"]

_RAY_EXPORTS = {"run_study": "hqray.tune.runner", "SweepResult": "hqray.tune.runner"}


def __getattr__(name: str) -> Any:
    # run_study imports Ray; load it only when asked for, so study validation stays Ray-free.
    if name in _RAY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_RAY_EXPORTS[name]), name)
    raise AttributeError(f"module 'hqray.tune' has no attribute {name!r}")
