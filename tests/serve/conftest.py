"""Shared by the serving tests: a real trained checkpoint (iris, 3 classes, named classes)."""

from __future__ import annotations

import numpy as np
import pytest

from hqray.data import load_dataset
from hqray.training import HybridClassifier, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    data = load_dataset("iris", task="multiclass")
    names = np.asarray(data.class_names)[data.labels]
    model = HybridClassifier("g6", epochs=5).fit(data.features, names, list(data.feature_names))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "iris")
