"""Reading YAML configuration files with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hqray.errors import ConfigError

__all__ = ["read_yaml_mapping"]


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
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {str(path)!r}: expected a mapping at the top level")
    return values
