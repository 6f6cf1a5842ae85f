"""The README's install line brings every package hqray's own modules import.

Each third-party module that any ``hqray`` module imports (at the top or inside a
function) must come from a distribution that ``pip install -e .`` installs: a core
requirement of hqray or one of their own requirements. An import the test extra
happened to provide (httpx once was) would crash ``hqray serve`` after the README's
install; this test finds it without a second virtual environment.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

PACKAGE = Path(__file__).resolve().parents[1] / "hqray"
# Modules that only an extra installs -> (the extra, the distribution that brings them, the
# files that may import them: behind a clear error that names the extra, or a check that the
# plugin is installed). An extra's module need not be installed here (CI installs the test
# extra, not ``bench``); the extra must still declare its distribution.
OPTIONAL = {"mlflow": ("mlflow", "mlflow-skinny", {"hqray/training/tracking.py"}),
            "qiskit": ("plugins", "pennylane-qiskit", {"hqray/benchmarks/noisy.py"}),
            "qiskit_aer": ("plugins", "qiskit-aer", {"hqray/quantum/backends.py", "hqray/benchmarks/noisy.py"}),
            "jax": ("bench", "jax", {"hqray/benchmarks/circuits.py"}),
            "tensorcircuit": ("bench", "tensorcircuit-ng", {"hqray/benchmarks/circuits.py"})}


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module name -> the hqray files that import it."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(PACKAGE.parent)))
    return found


def installed_closure(distribution: str, extras: tuple[str, ...] = ()) -> set[str]:
    """``distribution`` and everything its requirements (with ``extras``) install, normalised."""
    seen: set[str] = set()
    pending = [(distribution, extras)]
    while pending:
        name, wanted = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    return {key for key, _ in seen}


def extra_requirements(extra: str) -> set[str]:
    """The distributions that hqray's ``extra`` names directly, normalised."""
    names = set()
    for text in metadata.requires("hqray") or []:
        requirement = Requirement(text)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            names.add(re.sub(r"[-_.]+", "-", requirement.name).lower())
    return names


def test_every_third_party_import_comes_with_the_core_install():
    provided = installed_closure("hqray")
    owners = metadata.packages_distributions()
    missing = {}
    for module, files in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("hqray", "__future__"):
            continue
        if module in OPTIONAL:
            extra, distribution, gates = OPTIONAL[module]
            assert files <= gates, f"{module!r} (the {extra} extra) is imported outside {sorted(gates)}: " \
                                   f"{sorted(files)}"
            assert distribution in extra_requirements(extra), f"the {extra} extra lacks {distribution!r}"
            continue
        distributions = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(module, [])}
        assert distributions, f"module {module!r} (imported by {sorted(files)}) is not installed at all"
        if not distributions & provided:
            missing[module] = sorted(files)
    assert not missing, f"imported by hqray but installed only by an extra or by hand: {missing}"


def test_the_check_sees_an_import_that_only_the_test_extra_installs():
    # The test extra's pytest is not a requirement of the core install: the closure must say so,
    # or the check above could not fail.
    assert "pytest" not in installed_closure("hqray")
    assert "httpx" in installed_closure("hqray") and "fastapi" in installed_closure("hqray")
