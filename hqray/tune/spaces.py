"""Plain search-space data (``{"loguniform": [1e-3, 1e-1]}``) -> Ray Tune domains."""

from __future__ import annotations

from typing import Any

from ray import tune

from hqray.errors import ConfigError
from hqray.tune.study import StudyConfig

__all__ = ["tune_domain", "param_space"]


def tune_domain(domain: dict[str, list], search_alg: str = "random") -> Any:
    """The Ray Tune domain of one plain entry.

    ``randint`` is ``[low, high)`` as in Ray Tune. With ``search_alg="grid"`` the discrete
    domains (``choice``, ``randint``, ``grid``) are enumerated with ``tune.grid_search`` and
    the continuous ones are sampled ``num_samples`` times per grid point.

    **Example**

    >>> tune_domain({"choice": [1, 2]}, "grid")
    {'grid_search': [1, 2]}
    """
    (kind, arguments), = domain.items()
    if search_alg == "grid" and kind in ("choice", "grid", "randint"):
        values = list(range(*arguments)) if kind == "randint" else list(arguments)
        return tune.grid_search(values)
    if kind == "uniform":
        return tune.uniform(*arguments)
    if kind == "loguniform":
        return tune.loguniform(*arguments)
    if kind == "choice":
        return tune.choice(list(arguments))
    if kind == "randint":
        return tune.randint(*arguments)
    if kind == "grid":
        if search_alg == "optuna":
            raise ConfigError("grid domains need search_alg 'random' or 'grid'; Optuna samples, use 'choice'")
        return tune.grid_search(list(arguments))
    raise ConfigError(f"unknown search-space domain {kind!r}")


def param_space(study: StudyConfig, generation: str) -> dict[str, Any]:
    """The Tune ``param_space`` of one generation of ``study``."""
    return {parameter: tune_domain(domain, study.search_alg)
            for parameter, domain in study.space_for(generation).items()}
