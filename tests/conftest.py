"""Shared test setup: offline, non-interactive plotting, an isolated ledger per test, and no
skips under ``CI=true`` (see ``tests/ci_skips.py``)."""

import os

import matplotlib
import pytest
from ci_skips import pytest_runtest_makereport  # noqa: F401  under CI=true a skip fails

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
matplotlib.use("Agg")


def pytest_configure(config):
    """Under pytest-xdist, each worker gets its share of the cores: two workers that each start
    two torch threads on a 2-core machine wait on each other far more than they compute (the
    tests train tiny models). Kernels and subprocesses started by the tests inherit the share."""
    config.addinivalue_line(
        "markers",
        "timing: asserts on latencies measured in the run; make coverage leaves it out (its "
        "tracing slows Python several times over, and the bounds are calibrated without it)",
    )
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    share = max(1, (os.cpu_count() or 1) // workers)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(share)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(share)
    threadpool_limits(limits=share)  # numpy's and scikit-learn's pools, already started


@pytest.fixture(autouse=True)
def isolated_ledger(tmp_path, monkeypatch):
    """Claims recorded by a test go to a temporary folder, never to the book's ledger."""
    folder = tmp_path / "ledger"
    monkeypatch.setenv("HANDBOOK_LEDGER_DIR", str(folder))
    monkeypatch.delenv("HANDBOOK_SMOKE", raising=False)
    monkeypatch.delenv("HANDBOOK_BUILD_DIR", raising=False)
    monkeypatch.delenv("HANDBOOK_PROGRESS", raising=False)
    monkeypatch.delenv("HANDBOOK_EXERCISES_STRICT", raising=False)
    monkeypatch.delenv("HANDBOOK_EXERCISES_EXPECT", raising=False)
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """One thread for torch and for scikit-learn's OpenMP/BLAS pools, for a module of tiny
    models: on a shared 2-core CPU, threads waiting for each other cost far more than they bring
    (a hiring-model epoch took 0.02 s on one thread, 1 s on two). A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def pytest_generate_tests(metafunc):
    """Parametrize the shared exercise-check tests (tests/exercise_harness.py) per chapter."""
    from exercise_harness import mistake_id, mistake_rows

    module = metafunc.module
    if "exercise_id" in metafunc.fixturenames and hasattr(module, "CHECKS"):
        metafunc.parametrize("exercise_id", sorted(module.CHECKS))
    if "mistake" in metafunc.fixturenames and hasattr(module, "MISTAKES"):
        rows = mistake_rows(module)
        metafunc.parametrize("mistake", rows, ids=[mistake_id(row) for row in rows])
