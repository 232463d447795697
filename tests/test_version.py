"""``mro --version`` and the version (with the git commit of a checkout) that every result records."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mro
from mro.cli import main
from mro.eval.records import hardware, source_commit


def test_version_flag_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mro {mro.__version__}"


def test_results_record_the_version_and_the_commit_of_a_checkout():
    source_commit.cache_clear()  # read once per process; a commit made since would be missed
    info = hardware()
    assert info["mro"] == mro.__version__
    src = Path(mro.__file__).resolve().parent
    inside = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True)
    if inside.returncode == 0:  # an editable install from a clone (as CI runs)
        assert info["git_commit"] == inside.stdout.strip() == source_commit()["git_commit"]
        assert isinstance(info["git_dirty"], bool)
    else:  # an installed wheel: no commit to name
        assert "git_commit" not in info
