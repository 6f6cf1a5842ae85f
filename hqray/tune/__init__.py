"""Ray Tune studies. Built so far: validated study files (hqray.tune.study); the sweep
runner (`hqray sweep`) is the open part of this layer."""

from hqray.tune.study import DatasetSpec, Resources, StudyConfig, load_study

__all__ = ["DatasetSpec", "Resources", "StudyConfig", "load_study"]
