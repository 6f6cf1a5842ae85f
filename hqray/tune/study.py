"""Study files: what a sweep compares, validated before Ray starts.

A study names a dataset, the model families to compare (generations such as ``g6`` and
estimator families such as ``qsvm``, :mod:`hqray.training.families`), search spaces that
override each family's defaults, folds, the metric, and the sweep's budget and resources.
Every error names the field and the allowed values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hqray.config_files import read_yaml_mapping
from hqray.data.registry import dataset_entry, parse_dataset_options
from hqray.errors import ConfigError, format_validation_error
from hqray.training.families import get_family
from hqray.validated import ValidatedModel

__all__ = ["StudyConfig", "DatasetSpec", "Resources", "load_study", "DOMAIN_KINDS"]

DOMAIN_KINDS = ("uniform", "loguniform", "choice", "randint", "grid")
MAX_NUM_SAMPLES = 10_000  # trials per generation: beyond this a study is a typo, not a plan


STUDY_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc")


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Resources(BaseModel):
    """Resources of one trial (fractions allowed); quantum generations also ask for QPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(1.0, ge=0.0)
    gpu: float = Field(0.0, ge=0.0)
    qpu: float | None = Field(None, ge=0.0, description="QPU units per quantum trial; default 0.5 when the "
                                                        "cluster has QPU, else none (logged)")


def _check_domain(where: str, domain: Any) -> None:
    if not isinstance(domain, dict) or len(domain) != 1:
        raise ConfigError(f"{where}: expected one of {list(DOMAIN_KINDS)} mapped to its arguments, got {domain!r}")
    kind, arguments = next(iter(domain.items()))
    if kind not in DOMAIN_KINDS:
        raise ConfigError(f"{where}: unknown domain {kind!r}; expected one of {list(DOMAIN_KINDS)}")
    if not isinstance(arguments, list) or not arguments:
        raise ConfigError(f"{where}.{kind}: expected a non-empty list, got {arguments!r}")
    if kind in ("uniform", "loguniform", "randint"):
        if len(arguments) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in arguments):
            raise ConfigError(f"{where}.{kind}: expected [low, high] numbers, got {arguments!r}")
        low, high = arguments
        if not low < high:
            raise ConfigError(f"{where}.{kind}: low ({low}) must be less than high ({high})")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{where}.loguniform: low ({low}) must be positive")


def _candidates(domain: dict[str, list]) -> list[Any]:
    """Values a domain can produce that bound what a trial may get: every discrete value,
    the ends of a range (``randint`` is ``[low, high)``)."""
    (kind, arguments), = domain.items()
    return [arguments[0], arguments[1] - 1] if kind == "randint" else list(arguments)


def _check_values(generation: str, parameter: str, domain: dict[str, list], epochs: int | None) -> None:
    """Every value a trial could draw is a valid setting of the family, checked before Ray
    starts: ``n_qubits: {choice: [99]}`` fails here, naming it."""
    family = get_family(generation)
    for value in _candidates(domain):
        try:
            family.validate({**({"epochs": epochs} if epochs and family.trains_by_epoch else {}), parameter: value})
        except (ConfigError, ValidationError) as error:
            reason = format_validation_error(error) if isinstance(error, ValidationError) else str(error)
            raise ConfigError(f"search_space.{generation}.{parameter}: value {value!r} is not a valid setting "
                              f"({reason})") from None


class StudyConfig(ValidatedModel):
    """A sweep: dataset, generations, search spaces, folds, metric, budget, resources.

    **Example**

    >>> study = StudyConfig(name="demo", dataset={"name": "iris"}, generations=["g0", "g6"])
    >>> study.folds, study.metric, study.mode
    (5, 'balanced_accuracy', 'max')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    error_label: ClassVar[str | None] = "study"

    name: str = Field(..., description="results go to results/<name>/")
    dataset: DatasetSpec
    generations: list[str] = Field(..., min_length=1)
    search_space: dict[str, dict[str, dict[str, list]]] = Field(default_factory=dict)
    folds: int = Field(5, ge=2, le=20)
    metric: Literal["accuracy", "balanced_accuracy", "f1", "roc_auc", "pr_auc"] = "balanced_accuracy"
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(8, ge=1, le=MAX_NUM_SAMPLES)
    scheduler: Literal["asha", "none"] = "asha"
    search_alg: Literal["optuna", "random", "grid"] = "optuna"
    resources_per_trial: Resources = Field(default_factory=Resources)
    max_concurrent_trials: int = Field(2, ge=1)
    seed: int = Field(0, ge=0)
    time_budget_s: float | None = Field(None, gt=0)
    epochs: int | None = Field(None, ge=1, description="overrides every generation's epochs")
    baselines: list[str] = Field(default_factory=lambda: ["logreg", "svc", "random_forest"])


    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise ValueError(f"must be 1-64 letters, digits, '_', '.' or '-', got {name!r}")
        return name

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        dataset_entry(self.dataset.name)  # unknown dataset: ConfigError naming the known ones
        parse_dataset_options(self.dataset.name, self.dataset.options)
        for generation in self.generations:
            get_family(generation)  # unknown name: ConfigError naming the known ones
        if len(set(self.generations)) != len(self.generations):
            raise ConfigError(f"study generations repeat an entry: {self.generations}")
        for generation, space in self.search_space.items():
            if generation not in self.generations:
                raise ConfigError(f"search_space.{generation}: not among the study's generations {self.generations}")
            if not space:
                raise ConfigError(f"search_space.{generation}: empty search space; remove it to use the defaults")
            for parameter, domain in space.items():
                family = get_family(generation)
                if not family.knows(parameter):
                    raise ConfigError(f"search_space.{generation}.{parameter}: unknown parameter; "
                                      f"expected one of {sorted(family.parameters())}")
                _check_domain(f"search_space.{generation}.{parameter}", domain)
        if self.search_alg == "optuna":
            for generation in self.generations:
                grids = [p for p, domain in self.space_for(generation).items() if "grid" in domain]
                if grids:
                    raise ConfigError(f"search_space.{generation}.{grids[0]}: grid domains need search_alg "
                                      "'random' or 'grid' (Optuna samples; use 'choice')")
        for generation in self.generations:
            if get_family(generation).trains_by_epoch and not self.space_for(generation):
                raise ConfigError(f"generation {generation!r} has an empty search space")
            for parameter, domain in self.space_for(generation).items():
                _check_values(generation, parameter, domain, self.epochs)
        return self

    def space_for(self, generation: str) -> dict[str, dict[str, list]]:
        """The family's default search space with the study's overrides on top."""
        defaults = dict(get_family(generation).search_space)
        return {**defaults, **self.search_space.get(generation, {})}


def load_study(path: str | Path) -> StudyConfig:
    """Reads and validates a study YAML file; errors name the file and the field."""
    values = read_yaml_mapping(path, "study file")
    try:
        return StudyConfig(**values)
    except ConfigError as error:
        raise ConfigError(f"study file {str(path)!r}: {error}") from None
