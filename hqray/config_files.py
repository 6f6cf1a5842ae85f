"""Reading YAML configuration files with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hqray.errors import ConfigError

__all__ = ["read_yaml_mapping", "yaml_problem"]


def yaml_problem(error: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where (PyYAML's own text spans lines).

    **Example**

    >>> try:
    ...     yaml.safe_load("a: 1\\n  b: [")
    ... except yaml.YAMLError as error:
    ...     print(yaml_problem(error))
    mapping values are not allowed here (line 2, column 4)
    """
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ConfigError names ``what`` and the path otherwise.

    **Example**

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = path.write_text("folds: 3")
    >>> read_yaml_mapping(path, "study file")
    {'folds': 3}
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {yaml_problem(error)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {str(path)!r}: expected a mapping at the top level")
    return values
