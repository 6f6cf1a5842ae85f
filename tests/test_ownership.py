"""hqray deletes only what it created and never mixes its output into a user's directory."""

from __future__ import annotations

import pytest

from hqray.errors import ConfigError
from hqray.ownership import MARKER, claim_directory, owned_by, remove_owned


def test_a_new_directory_is_created_and_marked(tmp_path):
    path = claim_directory(tmp_path / "out", "training run", "train")
    assert owned_by(path) == {"created_by": "hqray", "kind": "training run", "name": "train"}
    (path / "metrics.json").write_text("{}")
    assert claim_directory(path, "training run", "train") == path  # its own: reused


def test_an_empty_existing_directory_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    assert owned_by(claim_directory(tmp_path / "empty", "training run", "train")) is not None


def test_a_directory_with_user_files_is_refused_naming_them_and_kept(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"holds files hqray did not write \(thesis.tex\); .* --overwrite"):
        claim_directory(tmp_path, "training run", "train")
    assert not (tmp_path / MARKER).exists()
    claim_directory(tmp_path, "training run", "train", overwrite=True)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_another_studys_directory_is_refused(tmp_path):
    path = claim_directory(tmp_path / "s", "study results", "iris")
    (path / "leaderboard.md").write_text("iris")
    with pytest.raises(ConfigError, match="holds hqray's study results 'iris'"):
        claim_directory(path, "study results", "digits")


def test_remove_owned_deletes_only_its_own(tmp_path):
    mine = claim_directory(tmp_path / "mine", "sweep storage", "iris")
    (mine / "state.json").write_text("{}")
    remove_owned(mine, "sweep storage", "iris")
    assert not mine.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.parquet").write_text("precious")
    with pytest.raises(ConfigError, match="hqray did not create it for the sweep storage 'iris'; it is left untouched"):
        remove_owned(foreign, "sweep storage", "iris")
    other = claim_directory(tmp_path / "other", "sweep storage", "digits")
    with pytest.raises(ConfigError, match="left untouched"):
        remove_owned(other, "sweep storage", "iris")
    assert (foreign / "data.parquet").read_text() == "precious" and other.exists()
