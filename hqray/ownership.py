"""Directories hqray writes into: claimed with a marker, deleted only when the marker is its own.

hqray never deletes or mixes data it did not create. A directory it writes results to
gets a small marker file naming what wrote it (``kind`` and ``name``, e.g. a study); a
later run may reuse or remove that directory only when the marker matches. A directory
that already holds other files is refused unless the caller says ``overwrite`` (and even
then hqray only writes its own files there, it deletes nothing).

**Example**

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> claim_directory(root / "study", "study results", "iris").name
'study'
>>> claim_directory(root / "study", "study results", "iris").name  # its own: reused
'study'
>>> _ = (root / "notes.txt").write_text("the user's own file")
>>> claim_directory(root, "study results", "iris")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
hqray.errors.ConfigError: directory '...' holds files hqray did not write (notes.txt, study); ...
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hqray.errors import ConfigError

__all__ = ["MARKER", "claim_directory", "owned_by", "remove_owned"]

MARKER = ".hqray-owner.json"


def owned_by(path: str | Path) -> dict | None:
    """The marker of ``path`` (``{"kind": ..., "name": ...}``), or ``None`` if hqray did not create it."""
    marker = Path(path) / MARKER
    try:
        owner = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner.get("created_by") == "hqray" else None


def claim_directory(path: str | Path, kind: str, name: str, overwrite: bool = False) -> Path:
    """Makes ``path`` hqray's output directory for ``kind``/``name`` and returns it.

    A missing or empty directory is created and marked; one marked for the same kind and
    name is reused.

    Raises:
        ConfigError: the directory holds files hqray did not write (or wrote for another
            kind or name) and ``overwrite`` is false; naming a few of them.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{str(path)!r} is a file; expected a directory for the {kind}")
    owner = owned_by(path)
    ours = owner is not None and owner.get("kind") == kind and owner.get("name") == name
    if path.is_dir() and not ours and not overwrite:
        foreign = sorted(entry.name for entry in path.iterdir() if entry.name != MARKER)
        if foreign:
            whose = (f"hqray's {owner.get('kind')} {owner.get('name')!r}" if owner else "files hqray did not write")
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(f"directory {str(path)!r} holds {whose} ({shown}); choose another directory, or "
                              f"pass --overwrite to write the {kind} {name!r} there anyway (nothing is deleted)")
    path.mkdir(parents=True, exist_ok=True)
    if not ours:
        (path / MARKER).write_text(json.dumps({"created_by": "hqray", "kind": kind, "name": name}))
    return path


def remove_owned(path: str | Path, kind: str, name: str) -> None:
    """Deletes ``path`` if hqray created it for ``kind``/``name``; refuses otherwise.

    Raises:
        ConfigError: ``path`` exists without hqray's marker for this kind and name.
    """
    path = Path(path)
    if not path.exists():
        return
    owner = owned_by(path)
    if owner is None or owner.get("kind") != kind or owner.get("name") != name:
        raise ConfigError(f"{str(path)!r} exists and hqray did not create it for the {kind} {name!r}; it is left "
                          "untouched: choose another location, or remove it yourself")
    shutil.rmtree(path)
