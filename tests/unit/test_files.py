"""jobs.files.replace_dir: readers always find a whole directory, even across a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobs.files import replace_dir

pytestmark = pytest.mark.unit


def written(path: Path, text: str, files: int = 3) -> Path:
    path.mkdir(parents=True)
    for i in range(files):
        (path / f"part-{i}").write_text(text)
    return path


def contents(path: Path) -> set[str]:
    return {p.read_text() for p in path.iterdir()}


def test_replacing_twice_leaves_the_newest_and_one_previous(tmp_path: Path):
    final = tmp_path / "table"
    for version in ("a", "b", "c"):
        replace_dir(written(tmp_path / f"tmp-{version}", version), final)
    assert contents(final) == {"c"}
    siblings = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".table@"))
    assert len(siblings) == 2  # c (current) and b (kept for readers that resolved it)
    assert {contents(tmp_path / s).pop() for s in siblings} == {"b", "c"}


def test_a_plain_directory_from_before_is_replaced(tmp_path: Path):
    final = written(tmp_path / "table", "old")
    replace_dir(written(tmp_path / "tmp", "new"), final)
    assert final.is_symlink() and contents(final) == {"new"}


KILLED = """
import os, signal, sys
from pathlib import Path
from jobs import files
step = sys.argv[3]
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(files.os, step, die)
files.replace_dir(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.parametrize("step", ["symlink", "replace"])
def test_a_kill_between_the_steps_leaves_the_old_directory_whole(tmp_path: Path, step: str):
    final = tmp_path / "table"
    replace_dir(written(tmp_path / "tmp-old", "old"), final)
    new = written(tmp_path / "tmp-new", "new")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(new), str(final), step],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.returncode == -signal.SIGKILL
    assert contents(final) == {"old"}  # killed mid-way: readers still see the old whole
    replace_dir(written(tmp_path / "tmp-next", "next"), final)  # the next run recovers
    assert contents(final) == {"next"}
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".table@")]) == 2


def test_readers_never_find_the_directory_missing_during_replacements(tmp_path: Path):
    final = tmp_path / "table"
    replace_dir(written(tmp_path / "tmp-0", "0", files=1), final)
    misses, stop = [], threading.Event()

    def read_forever():
        reads = 0
        while not stop.is_set():
            try:
                (final / "part-0").read_text()
                reads += 1
            except FileNotFoundError as exc:
                misses.append(exc)
        misses.append(reads)

    reader = threading.Thread(target=read_forever)
    reader.start()
    for i in range(1, 200):
        replace_dir(written(tmp_path / f"tmp-{i}", str(i), files=1), final)
    stop.set()
    reader.join()
    *errors, reads = misses
    assert reads > 0 and errors == []


def test_saving_an_artifact_again_keeps_it_and_a_damaged_one_is_replaced(tmp_path: Path):
    from jobs.models import families
    from jobs.train.registry import artifact_sha256
    from jobs.train.train import save_artifact
    from tests.unit.test_models import tiny_frame

    model = families.create("popularity", window_days=None).fit(tiny_frame())
    version, final, sha = save_artifact(model, tmp_path, lambda sha: f"pop-{sha[:8]}")
    first_target = os.readlink(final)
    again = save_artifact(model, tmp_path, lambda sha: f"pop-{sha[:8]}")  # a retried task
    assert again == (version, final, sha) and os.readlink(final) == first_target
    next(p for p in final.rglob("*") if p.is_file()).write_bytes(b"damaged")
    assert artifact_sha256(final) != sha
    save_artifact(model, tmp_path, lambda sha: f"pop-{sha[:8]}")
    assert artifact_sha256(final) == sha and os.readlink(final) != first_target
    assert not list(tmp_path.glob(".tmp-*"))


def test_remove_dir_takes_the_name_in_one_step_then_the_bytes(tmp_path: Path):
    from jobs.files import remove_dir

    final = tmp_path / "table"
    for version in ("a", "b"):
        replace_dir(written(tmp_path / f"tmp-{version}", version), final)
    plain = written(tmp_path / "plain", "p")
    assert remove_dir(final) and remove_dir(plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert remove_dir(final) is False  # a rerun finds nothing


def test_remove_dir_finishes_what_a_killed_removal_left(tmp_path: Path):
    from jobs.files import remove_dir

    final = replace_dir(written(tmp_path / "tmp", "a"), tmp_path / "table")
    final.unlink()  # killed right after the name went: the bytes are still there, hidden
    assert [p.name.startswith(".table@") for p in tmp_path.iterdir()] == [True]
    assert remove_dir(final) is True
    assert list(tmp_path.iterdir()) == []
