"""Study files validate before Ray starts, naming the bad field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hqray.errors import ConfigError
from hqray.training.families import get_family
from hqray.tune import StudyConfig, load_study

SPACES = Path(__file__).resolve().parents[2] / "tune_spaces"
VALID = {"name": "demo", "dataset": {"name": "iris"}, "generations": ["g0", "g6"]}


@pytest.mark.parametrize("path", sorted(SPACES.glob("**/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_loads(path):
    study = load_study(path)
    assert study.name == path.stem
    for generation in study.generations:
        if get_family(generation).trains_by_epoch:
            assert study.space_for(generation)


def test_required_studies_are_shipped():
    assert {p.stem for p in SPACES.glob("*.yaml")} >= {
        "quickstart", "iris", "breast_cancer", "genomics", "finance", "digits", "generations_all"}


def test_overrides_replace_defaults():
    study = StudyConfig(**VALID, search_space={"g6": {"n_layers": {"choice": [3]}}})
    assert study.space_for("g6")["n_layers"] == {"choice": [3]}
    assert "learning_rate" in study.space_for("g6")  # the generation's defaults stay


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "blue"}, r"colour: unknown field"),
    ({"folds": "five"}, r"folds: Input should be a valid integer"),
    ({"folds": 1}, r"folds: Input should be greater than or equal to 2"),
    ({"generations": ["g0", "g42"]}, r"unknown model family or generation 'g42'; expected one of .*'qsvm'"),
    ({"dataset": {"name": "mnist"}}, r"unknown dataset 'mnist'; expected one of"),
    ({"dataset": {"name": "iris", "options": {"tsk": 1}}}, r"tsk: unknown field"),
    ({"search_space": {"g6": {}}}, r"search_space.g6: empty search space"),
    ({"search_space": {"g6": {"n_layerz": {"choice": [1]}}}}, r"search_space.g6.n_layerz: unknown parameter"),
    ({"search_space": {"g6": {"learning_rate": {"loguniform": [0.1, 0.01]}}}}, r"low \(0.1\) must be less than high"),
    ({"search_space": {"g6": {"learning_rate": {"normal": [0, 1]}}}}, r"unknown domain 'normal'"),
    ({"search_space": {"g1": {"n_layers": {"choice": [1]}}}}, r"search_space.g1: not among the study's generations"),
    ({"resources_per_trial": {"cpu": -1}}, r"resources_per_trial.cpu: Input should be greater than or equal to 0"),
    ({"metric": "speed"}, r"metric: Input should be"),
    ({"name": "bad name!"}, r"name: must be 1-64 letters"),
    # Every value a trial could draw is checked against the generation's config before Ray starts.
    ({"search_space": {"g6": {"n_qubits": {"choice": [4, 99]}}}},
     r"search_space.g6.n_qubits: value 99 is not a valid setting .*less than or equal to 24"),
    ({"search_space": {"g6": {"learning_rate": {"choice": ["fast"]}}}},
     r"search_space.g6.learning_rate: value 'fast' is not a valid setting"),
    ({"search_space": {"g6": {"n_layers": {"randint": [0, 3]}}}}, r"search_space.g6.n_layers: value 0 is not"),
    ({"generations": ["g0", "qsvm"], "search_space": {"qsvm": {"kernel": {"choice": ["rbf"]}}}},
     r"search_space.qsvm.kernel: value 'rbf' is not a valid setting"),
    ({"num_samples": 1_000_000_000}, r"num_samples: Input should be less than or equal to 10000"),
])
def test_malformed_studies_name_the_field(change, message):
    with pytest.raises(ConfigError, match=message):
        StudyConfig(**{**VALID, **change})


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**VALID, "folds": 0}))
    with pytest.raises(ConfigError, match=r"study file '.*study.yaml': study folds"):
        load_study(path)
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_study(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")


def test_validation_happens_before_ray_is_imported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**VALID, "generations": ["g99"]}))
    code = ("import sys\nfrom hqray.tune import load_study\n"
            f"try:\n    load_study({str(path)!r})\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print('ray imported' if 'ray' in sys.modules else 'ray not imported')\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.stdout.split() == ["ConfigError", "ray", "not", "imported"], completed.stderr


def test_hqray_sweep_rejects_a_malformed_study_before_ray_starts(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**VALID, "resources_per_trial": {"cpu": 1, "qpu": -0.5}}))
    code = ("import sys\nfrom hqray.cli import main\ncode = main(['sweep', sys.argv[1]])\n"
            "print('ray imported' if 'ray' in sys.modules else 'ray not imported', code)\n")
    completed = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert "resources_per_trial.qpu" in completed.stdout, completed.stdout + completed.stderr
    assert completed.stdout.strip().endswith("ray not imported 2")
