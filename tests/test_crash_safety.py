"""A writer killed at any step of an atomic write leaves the old output, nothing, or the whole
new output under the final name, never a part; the next write removes what it left.

Each child process kills itself at one crash point (SPARSEIR_CRASH_AT, see sparseir.fileio),
so that every step is hit exactly, whatever the speed or the number of cores of the machine.
"""

import itertools
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import sparseir
from sparseir.fileio import CRASH_AT_ENV
from conftest import random_vectors

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

OLD_DOCS, NEW_DOCS = 300, 1000


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    """(old vectors, the path of the new vectors): sizes tell which one an output holds."""
    rng = np.random.default_rng(5)
    new = tmp_path_factory.mktemp("kill") / "new.jsonl"
    sparseir.write_vectors(random_vectors(rng, NEW_DOCS, 300, 10), new)
    return random_vectors(rng, OLD_DOCS, 300, 10), new


def killed_at(step: int, command: list[str]) -> bool:
    """Run `command` told to kill itself at crash point `step`; False when it completed first."""
    child = subprocess.run(command, env={**os.environ, CRASH_AT_ENV: str(step)}, capture_output=True)
    if child.returncode == 0:
        return False
    # Killed by its crash point, not failed for some other reason.
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    return True


def leftovers(output):
    return sorted(output.parent.glob(f".{output.name}.*"))


def indexed_docs(output) -> int | None:
    """Documents of the index at `output`, checked in full (a partial one raises); None when there is none."""
    return sparseir.load_index(output, verify=True).n_docs if output.exists() else None


@pytest.mark.parametrize("existing, out_of_core", [(False, False), (True, False), (False, True)],
                         ids=["fresh", "overwrite", "fresh-out-of-core"])
def test_index_killed_at_each_write_step_is_old_or_whole(vectors, tmp_path, existing, out_of_core):
    old_vectors, new_vectors = vectors
    old = sparseir.build_index(old_vectors)
    output = tmp_path / "index"
    command = [sys.executable, "-m", "sparseir", "index", str(new_vectors), "-o", str(output), "--vocab", "open",
               "--overwrite"] + (["--memory-budget", "16K"] if out_of_core else [])
    seen, left = [], []
    for step in itertools.count(1):
        if existing:
            old.save(output, overwrite=True)
        else:
            shutil.rmtree(output, ignore_errors=True)
        if not killed_at(step, command):
            break
        seen.append(indexed_docs(output))
        left.append(len(leftovers(output)))
        # The next save deletes what the killed writer left, which never was under the final name.
        old.save(output, overwrite=True)
        assert leftovers(output) == [], step
        assert indexed_docs(output) == OLD_DOCS
    assert indexed_docs(output) == NEW_DOCS and leftovers(output) == []
    assert any(left)  # some kill left a temporary for the next save to remove
    # One crash point per file written and more around the rename: the kills covered every step.
    assert len(seen) > len(list(output.iterdir()))
    # Old (when there was one), then nothing, then new, each over consecutive steps: the new
    # index appears in one rename, and killed after it, stays.
    phases = [OLD_DOCS, None, NEW_DOCS]
    assert seen == sorted(seen, key=phases.index), seen
    assert seen[0] == (OLD_DOCS if existing else None) and seen[-1] == NEW_DOCS, seen


def test_file_killed_at_each_write_step_is_old_or_whole(tmp_path):
    rng = np.random.default_rng(6)
    output = tmp_path / "vectors.jsonl"
    new = tmp_path / "new.jsonl"
    sparseir.write_vectors(random_vectors(rng, NEW_DOCS, 300, 10), new)
    old_vectors = random_vectors(rng, OLD_DOCS, 300, 10)
    command = [sys.executable, "-c", "import sys, sparseir; "
               "sparseir.write_vectors(sparseir.read_vectors(sys.argv[1]), sys.argv[2], overwrite=True)",
               str(new), str(output)]
    seen, left = [], []
    for step in itertools.count(1):
        sparseir.write_vectors(old_vectors, output, overwrite=True)
        assert leftovers(output) == [], step  # the next write removed the killed writer's temporary
        if not killed_at(step, command):
            break
        seen.append(len(sparseir.read_vectors(output)))
        left.append(len(leftovers(output)))
    assert len(sparseir.read_vectors(output)) == NEW_DOCS and leftovers(output) == []
    assert seen == [OLD_DOCS, NEW_DOCS] and left == [1, 0]  # killed before the rename, then after it
