"""Data-parallel training with ``torchrun`` (chapter 10): the script, and the launcher around it.

The script is ``handbook.train`` under ``torchrun``; each process runs::

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m handbook.distributed \\
        --out _build/ddp --epochs 3

:func:`main` joins the process group (:func:`handbook.train.init_distributed`: gloo on CPUs,
NCCL on GPUs), loads the data, trains a small MLP with ``train.fit`` (a ``DistributedSampler``
gives each process its share of every global batch, ``DistributedDataParallel`` averages the
gradients), and writes from rank 0 the checkpoint ``model.safetensors``; every rank writes
``rank<r>.json`` (its throughput and its final weights) so that a test can check that the
processes agree. :func:`launch` starts ``torchrun`` as a subprocess with a bounded time, and
:func:`torchrun_command` builds the command for one node of a multi-node run (the same command the
Kubernetes ``PyTorchJob`` in ``deploy/k8s-training/`` runs on each node).

Data: ``digits`` (scikit-learn's 8x8 digits, 1,437 training images) or ``blobs`` (a seeded
two-class problem in 2 dimensions, for tests that need a run of a few hundred milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Upper bound on any collective (seconds): a peer that disappears ends the run, not hangs it.
COLLECTIVE_TIMEOUT_S = 30.0
DATASETS = ("digits", "blobs")


def load_data(name: str, seed: int = 0):
    """``(train_inputs, train_targets, test_inputs, test_targets)`` tensors of ``name``.

    ``digits``: inputs ``(n, 64)`` scaled to [0, 1], 10 classes, a stratified 80/20 split
    (1,437 training and 360 test digits: every fifth of each digit's seeded shuffle is a test
    digit); ``blobs``: 512 training and 128 test points ``(n, 2)``, 2 classes.
    """
    import numpy as np
    import torch

    if name == "digits":
        pixels, digits = _digits_table()
        inputs, targets = pixels.astype(np.float32) / 16, digits.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(targets))
        order = order[np.argsort(targets[order], kind="stable")]  # shuffled within each digit
        test = np.zeros(len(targets), dtype=bool)
        test[order[::5]] = True
        train_x, test_x = torch.from_numpy(inputs[~test]), torch.from_numpy(inputs[test])
        train_y, test_y = torch.from_numpy(targets[~test]), torch.from_numpy(targets[test])
        return train_x, train_y, test_x, test_y
    if name == "blobs":
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(640, 2, generator=generator)
        targets = (inputs[:, 0] - 0.5 * inputs[:, 1] > 0).long()
        return inputs[:512], targets[:512], inputs[512:], targets[512:]
    raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(DATASETS)}")


def _digits_table():
    """``(pixels (1797, 64), digits (1797,))``: scikit-learn's digits file, read with numpy.

    Every worker process loads the data; ``sklearn.datasets.load_digits`` would first import
    scikit-learn (and SciPy), a second of each worker's start-up, to read this one file.
    """
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1]
    raise FileNotFoundError(
        f"the digits need scikit-learn's datasets/data/digits.csv.gz, not found under {folders}"
    )


def build_model(features: int, classes: int, hidden: int, seed: int):
    """An MLP ``features -> hidden -> classes`` with seeded initial weights (the same on every
    process; DDP would copy rank 0's anyway)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def flat_weights(model) -> list[float]:
    """Every parameter of ``model``, flattened in ``named_parameters`` order."""
    import torch

    return torch.cat([parameter.detach().flatten() for parameter in model.parameters()]).tolist()


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.distributed",
        description="Train a small MLP with handbook.train, one process or many under torchrun.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoint + reports")
    parser.add_argument("--data", choices=DATASETS, default="digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--no-eval", action="store_true", help="skip the per-epoch evaluation")
    parser.add_argument(
        "--train-examples", type=int, default=0, help="use the first N training examples (0: all)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train as one process of a ``torchrun`` job (or alone); write the checkpoint and reports."""
    arguments = parse_arguments(argv)
    import torch

    from handbook import train

    info = train.init_distributed(timeout_s=COLLECTIVE_TIMEOUT_S)
    torch.set_num_threads(arguments.threads)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / f"rank{info.rank}.pid").write_text(str(os.getpid()))
    train_x, train_y, test_x, test_y = load_data(arguments.data, arguments.seed)
    if arguments.train_examples:
        train_x, train_y = train_x[: arguments.train_examples], train_y[: arguments.train_examples]
    model = build_model(train_x.shape[1], int(train_y.max()) + 1, arguments.hidden, arguments.seed)
    loader = train.make_loader(
        train_x,
        train_y,
        batch_size=arguments.batch_size,
        shuffle=True,
        seed=arguments.seed,
        distributed=True,
    )
    # the test set is sharded too: its global batch must be a multiple of the processes
    test_batch = info.world_size * max(1, 256 // info.world_size)
    test_loader = train.make_loader(test_x, test_y, batch_size=test_batch, shuffle=False)
    history = train.fit(
        model,
        loader,
        epochs=arguments.epochs,
        optimizer=torch.optim.SGD(model.parameters(), lr=arguments.lr),
        val_loader=None if arguments.no_eval else test_loader,
        device="cpu",
        description=f"{info.world_size} process(es)",
        checkpoint=arguments.out / "model.safetensors",
    )
    examples = arguments.epochs * len(train_x)
    report = {
        "rank": info.rank,
        "world_size": info.world_size,
        "threads": arguments.threads,
        "examples": examples,
        "seconds": history.total_seconds,
        "examples_per_second": examples / history.total_seconds,
        "train_loss": history.train_loss,
        "val_accuracy": history.val_accuracy,
        "weights": flat_weights(model),
    }
    (arguments.out / f"rank{info.rank}.json").write_text(json.dumps(report))
    if info.distributed:
        torch.distributed.destroy_process_group()
    return 0


@dataclass
class Launch:
    """A finished ``torchrun`` (or plain) run: exit code, wall time, output, per-rank reports."""

    returncode: int
    seconds: float
    output: str
    reports: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def torchrun_command(
    script_arguments: Sequence[str],
    *,
    processes: int,
    nodes: int = 1,
    rendezvous: str | None = None,
    job_id: str = "handbook",
) -> list[str]:
    """The ``torchrun`` command line for one node: ``processes`` workers on this node.

    One node: ``--standalone`` (a rendezvous on a free local port). Several nodes: every node
    runs the same command with ``rendezvous="host:port"`` of one reachable machine (c10d
    rendezvous, no separate service to run) and the same ``job_id``. ``--max-restarts 0``: a
    failed worker fails the job at once, naming its rank.
    """
    if processes < 1 or nodes < 1:
        raise ValueError(f"expected at least 1 process and 1 node, got {processes} and {nodes}")
    command = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1 and rendezvous is None:
        command += ["--standalone"]
    else:
        if rendezvous is None:
            raise ValueError(f"a run on {nodes} nodes needs rendezvous='host:port'")
        command += [
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            rendezvous,
            "--rdzv-id",
            job_id,
            "--rdzv-conf",
            f"join_timeout={int(COLLECTIVE_TIMEOUT_S)}",
        ]
    command += [
        "--nnodes",
        str(nodes),
        "--nproc-per-node",
        str(processes),
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.2",
        "-m",
        "handbook.distributed",
        *script_arguments,
    ]
    return command


def worker_environment() -> dict[str, str]:
    """This process's environment for the workers: the package importable from the checkout,
    one thread per library pool, gloo on the loopback interface (a run on one machine)."""
    root = str(Path(__file__).resolve().parent.parent)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [root, *filter(None, [environment.get("PYTHONPATH")])]
    )
    environment.setdefault("OMP_NUM_THREADS", "1")
    environment.setdefault("GLOO_SOCKET_IFNAME", "lo")
    environment.setdefault("PYTHONWARNINGS", "ignore")
    environment.setdefault("HANDBOOK_PROGRESS", "0")
    return environment


def start(command: Sequence[str]) -> subprocess.Popen:
    """Start ``command`` in its own process group (so that a timeout can end all of it)."""
    return subprocess.Popen(
        list(command),
        env=worker_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, started: float, timeout_s: float, out: Path) -> Launch:
    """Wait at most ``timeout_s`` for ``process``; on timeout kill its whole group and raise."""
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise TimeoutError(
            f"{' '.join(process.args[:8])} ... did not finish in {timeout_s:g} s:\n{output[-2000:]}"
        ) from error
    return Launch(process.returncode, time.perf_counter() - started, output, read_reports(out))


def read_reports(out: Path) -> list[dict]:
    """The ``rank<r>.json`` reports in ``out``, in rank order."""
    reports = [json.loads(path.read_text()) for path in Path(out).glob("rank*.json")]
    return sorted(reports, key=lambda report: report["rank"])


def script_arguments(out: Path, **script_options: object) -> list[str]:
    """The script's command line: ``epochs=3`` -> ``--epochs 3``, ``no_eval=True`` ->
    ``--no-eval`` (``False`` and ``None`` leave the flag out)."""
    arguments = ["--out", str(out)]
    for name, value in script_options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(flag)
        elif value is not False and value is not None:
            arguments += [flag, str(value)]
    return arguments


def launch(
    out: Path,
    *,
    processes: int,
    timeout_s: float = 120.0,
    in_process: bool = False,
    torchrun: bool = True,
    **script_options: object,
) -> Launch:
    """Run the script on ``processes`` workers of this machine (``torchrun --standalone``) and
    return when they finish; ``script_options`` become its flags (see :func:`script_arguments`).
    Raises ``TimeoutError`` after ``timeout_s``.

    ``torchrun=False`` (one process only) starts the script as plain ``python -m
    handbook.distributed``: a one-process job needs no launcher, and ``torchrun``'s agent (a
    process of its own that imports PyTorch, then a rendezvous) would add seconds to its wall
    time. The training is the same (the sampler's order, see :func:`handbook.train.make_loader`),
    without ``DistributedDataParallel`` around the model.

    ``in_process=True`` (one process only) runs :func:`main` in this process instead: the same
    training on the same global batch without starting Python, torch and ``torchrun`` again (a
    few seconds each), as the reference a distributed run is compared with. Its ``seconds``
    then has no start-up in it, and this process's torch threads are restored afterwards.
    """
    out = Path(out)
    arguments = script_arguments(out, **script_options)
    started = time.perf_counter()
    if in_process:
        if processes != 1:
            raise ValueError(f"in_process=True runs one process, got processes={processes}")
        import torch

        threads = torch.get_num_threads()
        try:
            returncode = main(arguments)
        finally:
            torch.set_num_threads(threads)
        return Launch(returncode, time.perf_counter() - started, "", read_reports(out))
    if torchrun:
        command = torchrun_command(arguments, processes=processes)
    elif processes == 1:
        command = [sys.executable, "-m", "handbook.distributed", *arguments]
    else:
        raise ValueError(f"torchrun=False runs one process, got processes={processes}")
    process = start(command)
    return finish(process, started, timeout_s, out)


if __name__ == "__main__":
    sys.exit(main())
