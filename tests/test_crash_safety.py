"""A build killed by a signal at any moment leaves no index and no partial output."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sparseir
from conftest import random_vectors


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    path = tmp_path_factory.mktemp("kill") / "docs.jsonl"
    sparseir.write_vectors(random_vectors(np.random.default_rng(5), 30000, 2000, 40), path)
    return path


def index_command(collection, output):
    return [sys.executable, "-m", "sparseir", "index", str(collection), "-o", str(output), "--vocab", "open"]


def test_killed_build_leaves_nothing_loadable(collection, tmp_path):
    started = time.perf_counter()
    subprocess.run(index_command(collection, tmp_path / "complete"), check=True, capture_output=True)
    duration = time.perf_counter() - started
    assert sparseir.load_index(tmp_path / "complete", verify=True).n_docs == 30000

    for fraction in (0.2, 0.5, 0.8, 0.9, 0.95, 0.99):
        output = tmp_path / f"killed-{fraction}"
        process = subprocess.Popen(index_command(collection, output), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Killed before the final rename: nothing; after it: the whole index. Never a part.
        if output.exists():
            assert sparseir.load_index(output, verify=True).n_docs == 30000
        # Only hidden temporary directories may remain; none of them is a loadable index.
        for leftover in tmp_path.glob(f".{output.name}.*"):
            with pytest.raises(sparseir.IndexFormatError):
                sparseir.load_index(leftover, verify=True)
