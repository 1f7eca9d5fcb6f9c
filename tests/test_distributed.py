"""``handbook.train`` under ``torchrun`` on this machine: gloo on CPU, tiny models, bounded times.

Each test launches real processes (``python -m torch.distributed.run``), so each costs the start
of two or three Python processes that import torch (a few seconds on an idle machine); the
training itself is a 2 -> 8 -> 2 MLP on 512 points for 3 epochs. Every wait is bounded: a run
that hangs fails the test with its output instead of blocking the suite.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from handbook import distributed, train

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = {"data": "blobs", "epochs": 3, "hidden": 8, "batch_size": 32, "lr": 0.5}
#: Two processes sum their gradients in another order than one process does: float32 rounding.
TOLERANCE = 1e-5
LAUNCH_TIMEOUT_S = 180


def _arguments(out: Path, **changes) -> list[str]:
    return distributed.script_arguments(out, **{**SCRIPT, **changes})


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The reference: the same script, the same global batch, one process (in this process)."""
    out = tmp_path_factory.mktemp("one-process")
    threads = torch.get_num_threads()
    run = distributed.launch(out, processes=1, in_process=True, **SCRIPT)
    assert run.ok and torch.get_num_threads() == threads
    (report,) = run.reports
    assert report["world_size"] == 1
    return report


def test_script_arguments_spell_flags_and_leave_out_false_and_none(tmp_path):
    arguments = distributed.script_arguments(tmp_path, epochs=3, no_eval=True, lr=None, x=False)
    assert arguments == ["--out", str(tmp_path), "--epochs", "3", "--no-eval"]
    with pytest.raises(ValueError, match="in_process=True runs one process, got processes=2"):
        distributed.launch(tmp_path, processes=2, in_process=True)
    with pytest.raises(ValueError, match="torchrun=False runs one process, got processes=2"):
        distributed.launch(tmp_path, processes=2, torchrun=False)


def test_one_process_without_torchrun_trains_as_the_reference(tmp_path, one_process):
    run = distributed.launch(
        tmp_path, processes=1, torchrun=False, timeout_s=LAUNCH_TIMEOUT_S, **SCRIPT
    )

    assert run.ok, run.output[-3000:]
    (report,) = run.reports
    assert report["world_size"] == 1
    assert report["weights"] == one_process["weights"]
    assert report["train_loss"] == one_process["train_loss"]


def test_the_digits_split_is_stratified_seeded_and_scikit_learns_digits():
    from sklearn.datasets import load_digits

    train_x, train_y, test_x, test_y = distributed.load_data("digits", seed=0)
    assert (len(train_x), len(test_x)) == (1437, 360)
    assert train_x.shape[1] == 64 and float(train_x.min()) >= 0 and float(train_x.max()) <= 1
    per_digit = np.bincount(test_y.numpy(), minlength=10) / np.bincount(
        np.concatenate([train_y.numpy(), test_y.numpy()]), minlength=10
    )
    assert np.all(np.abs(per_digit - 0.2) < 0.01), per_digit
    bunch = load_digits()
    rows = {tuple(row) for row in (bunch.data / 16).astype(np.float32)}
    assert all(tuple(row) in rows for row in test_x.numpy())
    again = distributed.load_data("digits", seed=0)
    assert all(
        torch.equal(first, second)
        for first, second in zip(again, (train_x, train_y, test_x, test_y), strict=True)
    )
    assert not torch.equal(distributed.load_data("digits", seed=1)[3], test_y)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_agree(reports: list[dict], reference: dict) -> None:
    assert [report["rank"] for report in reports] == [0, 1]
    assert all(report["world_size"] == 2 for report in reports)
    first, second = (np.array(report["weights"]) for report in reports)
    np.testing.assert_array_equal(first, second)  # DDP keeps the replicas identical
    np.testing.assert_allclose(first, reference["weights"], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(reports[0]["train_loss"], reference["train_loss"], atol=TOLERANCE)


def test_two_processes_reach_the_weights_of_one_process_on_the_same_global_batch(
    tmp_path, one_process
):
    run = distributed.launch(tmp_path, processes=2, timeout_s=LAUNCH_TIMEOUT_S, **SCRIPT)

    assert run.ok, run.output[-3000:]
    _assert_agree(run.reports, one_process)
    assert run.reports[0]["val_accuracy"][-1] > 0.9
    checkpoint = distributed.build_model(2, 2, SCRIPT["hidden"], seed=1)
    from safetensors.torch import load_model

    load_model(checkpoint, str(tmp_path / "model.safetensors"))  # written by rank 0 only
    assert distributed.flat_weights(checkpoint) == run.reports[0]["weights"]


def test_two_launchers_joined_by_c10d_rendezvous_on_loopback_finish_and_agree(
    tmp_path, one_process
):
    """A two-node run on one machine: two torchrun agents, one worker each, one rendezvous."""
    command = distributed.torchrun_command(
        _arguments(tmp_path),
        processes=1,
        nodes=2,
        rendezvous=f"127.0.0.1:{_free_port()}",
        job_id="two-nodes",
    )
    started = time.perf_counter()
    launchers = [distributed.start(command) for _ in range(2)]
    runs = [
        distributed.finish(launcher, started, LAUNCH_TIMEOUT_S, tmp_path) for launcher in launchers
    ]

    assert all(run.ok for run in runs), [run.output[-2000:] for run in runs]
    _assert_agree(runs[-1].reports, one_process)


def test_killing_one_worker_fails_the_run_fast_naming_the_rank(tmp_path):
    command = distributed.torchrun_command(
        [*_arguments(tmp_path, epochs=100_000), "--no-eval"], processes=2
    )
    started = time.perf_counter()
    launcher = distributed.start(command)
    pid_files = [tmp_path / "rank0.pid", tmp_path / "rank1.pid"]
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not all(path.exists() for path in pid_files):
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.1)
    time.sleep(0.5)  # inside the training loop, both waiting on each other's gradients
    killed_at = time.monotonic()
    os.kill(int(pid_files[1].read_text()), signal.SIGKILL)

    run = distributed.finish(launcher, started, 60, tmp_path)  # raises if it hangs instead

    assert run.returncode != 0
    assert time.monotonic() - killed_at < 60
    root_cause = run.output.split("Root Cause")[-1]
    assert "rank      : 1 (local_rank: 1)" in root_cause, run.output[-3000:]
    assert "SIGKILL" in root_cause
    assert not (tmp_path / "rank0.json").exists(), "rank 0 must not report a finished run"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RANK": "0"}, "RANK set but LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT missing"),
        (
            {
                "RANK": "2",
                "LOCAL_RANK": "0",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": "29500",
            },
            "RANK=2 is outside a world of WORLD_SIZE=2",
        ),
    ],
)
def test_a_wrongly_launched_process_gets_a_clear_error(monkeypatch, variables, message):
    for name in train.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="launched wrongly") as error:
        train.init_distributed()
    assert message in str(error.value)
    assert "torchrun" in str(error.value) or "outside" in str(error.value)


def test_without_torchrun_a_run_is_one_process_and_loaders_are_unsharded(monkeypatch):
    for name in train.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    info = train.init_distributed()
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    inputs, targets = torch.zeros(8, 2), torch.zeros(8, dtype=torch.long)
    loader = train.make_loader(inputs, targets, batch_size=4, shuffle=True)
    assert not isinstance(loader.sampler, torch.utils.data.DistributedSampler)
    sharded = train.make_loader(inputs, targets, batch_size=4, shuffle=True, distributed=True)
    assert isinstance(sharded.sampler, torch.utils.data.DistributedSampler)
    assert sharded.batch_size == 4  # a world of one keeps the whole global batch


def test_a_script_flag_error_names_the_choices():
    with pytest.raises(ValueError, match="expected one of digits, blobs"):
        distributed.load_data("mnist")
    with pytest.raises(ValueError, match="needs rendezvous='host:port'"):
        distributed.torchrun_command([], processes=1, nodes=2)
