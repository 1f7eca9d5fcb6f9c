"""The same code gives the same numbers: each chapter's key computation, run twice in this
process and once in each of two fresh processes, must give bit-identical results.

The fresh processes get different ``PYTHONHASHSEED`` values, so a result that depends on the
iteration order of a set or dict of strings (or on any hash-seeded table, such as those inside
the ``tokenizers`` trainers) shows up as a difference. Every computation runs on one torch
thread in all three places, so that thread scheduling is the same.

Run as a script (``python tests/test_determinism.py``) it prints every fingerprint as JSON:
that is what the fresh processes do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def fingerprint(*values) -> str:
    """SHA-256 of the exact bytes of numbers, arrays, tensors and strings, in order."""
    digest = hashlib.sha256()
    for value in values:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous().numpy()
        if isinstance(value, np.ndarray):
            digest.update(str(value.dtype).encode() + str(value.shape).encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (list, tuple)):
            digest.update(fingerprint(*value).encode())
        elif isinstance(value, float):
            digest.update(value.hex().encode())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()[:16]


def translation_key() -> list:
    """Chapters 1-4: both tokenizers trained on number words, and the ids they give."""
    from handbook import datasets, translation

    data = datasets.number_words_sample({"train": 200, "test": 20}, seed=0)
    task = translation.build_task(data)
    source, target_in, target_out = translation.teacher_forcing_tensors(task, "test")
    return [
        fingerprint(task.source_tokenizer.to_str(), task.target_tokenizer.to_str()),
        fingerprint(source, target_in, target_out),
    ]


def optimization_key() -> list:
    """Chapter 2 (C4, C6): the translator trained under the article's recipe (dropout,
    weight decay, schedule, mixed precision): per-epoch losses and test BLEU."""
    from handbook import datasets, optimization, translation

    data = datasets.number_words_sample({"train": 48, "validation": 16, "test": 16}, seed=0)
    task = translation.build_task(data)
    run = optimization.train_translation(
        task,
        optimization.ARTICLE_RECIPE,
        seed=0,
        epochs=2,
        batch_size=16,
        validation_split="validation",
        device="cpu",
        progress=False,
    )
    return [run.history.train_loss, run.history.val_loss, run.scores.bleu]


def data_key() -> list:
    """Chapter 3 (C7, C8, C10): deduplication, out-of-fold probabilities, synonym copies,
    a back-translating translator, and the recommender with sampled negatives."""
    from handbook import data, datasets, translation

    corpus = datasets.noisy_text_classification(200, seed=0, test_size=20)["train"]
    texts, labels = list(corpus["text"]), np.asarray(corpus["label"])
    near = data.near_duplicates(texts, threshold=0.6)
    probabilities = data.out_of_fold_probabilities(texts, labels, folds=3, seed=0)
    augmented, _ = data.augment_with_synonyms(
        texts[:20], labels[:20], data.lexicon_synonyms(), copies=1, seed=0
    )
    numbers = datasets.number_words(max_number=300, seed=0)["train"]
    english, german = list(numbers["english"][:64]), list(numbers["german"][:64])
    english_tokenizer = translation.train_word_tokenizer(english)
    german_tokenizer = translation.train_subword_tokenizer(german)
    reverse, history = data.train_translator(
        german, english, german_tokenizer, english_tokenizer, steps=4, seed=0
    )
    synthetic = data.back_translate(reverse, german[:8], german_tokenizer, english_tokenizer)
    logs = datasets.click_logs(n_users=30, n_items=20, impressions_per_user=10, seed=0)["train"]
    columns = [np.asarray(logs[name]) for name in ("user", "item", "clicked")]
    rows = data.sample_negatives(*columns, 20, per_click=1, seed=0)
    recommender = data.train_recommender(*rows, 30, 20, steps=10, seed=0)
    return [
        fingerprint(near, probabilities, augmented),
        history.train_loss,
        fingerprint(synthetic),
        fingerprint(*rows, *recommender.parameters()),
    ]


def _digit_tensors(rows: int):
    from handbook import datasets

    split = datasets.digits(seed=0)["train"].select(range(rows))
    return datasets.image_tensors(split)


def digits_key() -> list:
    """Chapter 0 (C24): a SmallCNN trained for one epoch on some digits."""
    from handbook import digits, train

    images, labels = _digit_tensors(256)
    train.set_seed(0)
    model = digits.SmallCNN(channels=8)
    loader = train.make_loader(images, labels, batch_size=64, shuffle=True, seed=0)
    history = train.fit(
        model,
        loader,
        epochs=1,
        optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3),
        device="cpu",
        progress=False,
    )
    return [history.train_loss, fingerprint(*model.state_dict().values())]


def attention_key() -> list:
    """Chapter 1 (C2): the depth experiment's gradient norms and losses."""
    from handbook import attention

    run = attention.depth_experiment(residual=True, num_layers=4, steps=4, d_model=16, batch_size=4)
    return [run.gradient_norms, run.losses]


def compression_key(tmp: Path | None = None) -> list:
    """Chapter 4 (C11-C14): distillation, channel pruning, INT8 weights, an INT8 ONNX file
    (its size decides part of C11's verdict) and what ONNX Runtime computes with it."""
    import tempfile

    from handbook import compression, digits, train

    images, labels = _digit_tensors(128)
    train.set_seed(0)
    teacher = digits.SmallCNN(channels=8).eval()
    student = digits.SmallCNN(channels=4)
    distiller = compression.Distiller(student, teacher, temperature=4.0, alpha=0.7)
    history = train.fit(
        distiller,
        train.make_loader(images, labels, batch_size=32, shuffle=True, seed=0),
        epochs=1,
        optimizer=torch.optim.AdamW(student.parameters(), lr=5e-3),
        loss_fn=distiller.loss,
        device="cpu",
        progress=False,
    )
    pruned = compression.prune_channels(teacher, 0.5).eval()
    quantized, scale = compression.quantize_symmetric(teacher.features[0].weight.detach(), axis=0)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = compression.export_onnx(
            pruned,
            (images[:1],),
            Path(folder) / "pruned.onnx",
            input_names=["images"],
            dynamic_axes={"images": {0: "batch"}},
            dynamo=False,  # the tracer: seconds faster than torch.export, same graph here
        )
        int8_path = compression.quantize_onnx_dynamic(onnx_path, Path(folder) / "pruned.int8.onnx")
        int8 = compression.OnnxModel(int8_path, threads=1)
        outputs = int8(images[:8])
        sizes = (onnx_path.stat().st_size, int8.file_bytes)
    with torch.no_grad():
        return [
            history.train_loss,
            fingerprint(pruned(images[:8]), quantized, scale, outputs),
            sizes,
            compression.count_flops(pruned, images[:1]),
        ]


def cases_key() -> list:
    """Chapter 6 (C18): the fraud LSTM trained for one epoch, its probabilities."""
    from handbook import cases, datasets

    split = datasets.fraud_sequences(n_users=200, seed=0)["train"]
    sequences = cases.event_tensors(split)
    model = cases.train_fraud_model(sequences, epochs=1, seed=0)
    return [fingerprint(cases.fraud_probabilities(model, sequences))]


def continual_key() -> list:
    """Chapter 7 (C20): EWC + replay through a small news stream: accuracies and FLOPs."""
    from handbook import continual, datasets

    stream = datasets.news_stream(periods=2, train_per_period=120, test_per_period=40, seed=0)
    periods = continual.stream_periods(stream, features=256)
    settings = continual.StreamConfig(epochs=1, hidden=16, fisher_samples=20)
    result = continual.run_stream(periods, "EWC + replay", settings, seed=0, progress=False)
    return [fingerprint(np.asarray(result.accuracy)), list(result.flops)]


def multimodal_key() -> list:
    """Chapter 8 (C21): a dual encoder trained with InfoNCE on digit captions."""
    from handbook import datasets, multimodal

    split = datasets.digit_captions(seed=0)["train"].select(range(64))
    vocabulary = multimodal.build_vocabulary(split["caption"])
    tokens = multimodal.encode_captions(split["caption"], vocabulary)
    images = torch.tensor(np.asarray(split["image"]), dtype=torch.float32).reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    model = multimodal.DualEncoder(len(vocabulary), dim=8)
    history = multimodal.train_dual_encoder(
        model, images / 16, tokens, epochs=2, batch_size=16, seed=0
    )
    return [history.train_loss]


def ethics_key() -> list:
    """Chapter 9 (C22): the hiring model, its decisions, and an FGSM attack on it."""
    from handbook import datasets, ethics

    data = datasets.hiring(n=400, seed=0)
    applicants = ethics.applicant_tensors(data["train"])
    model = ethics.train_hiring_model(applicants, epochs=2, batch_size=64, seed=0)
    probabilities = ethics.hire_probabilities(model, applicants.inputs)
    weights = ethics.reweighing_weights(applicants.hired, applicants.groups)
    return [fingerprint(probabilities, weights)]


#: One key computation per chapter module (the function names say which).
KEY_COMPUTATIONS: dict[str, Callable[[], list]] = {
    "digits": digits_key,
    "attention": attention_key,
    "translation": translation_key,
    "optimization": optimization_key,
    "data": data_key,
    "compression": compression_key,
    "cases": cases_key,
    "continual": continual_key,
    "multimodal": multimodal_key,
    "ethics": ethics_key,
}


def _as_json(values: list) -> list:
    """The key computation's result as JSON would give it back (tuples become lists)."""
    return json.loads(json.dumps(values))


def compute_all() -> dict[str, list]:
    torch.set_num_threads(1)
    return {name: _as_json(compute()) for name, compute in KEY_COMPUTATIONS.items()}


class FreshProcesses:
    """Two interpreters computing every fingerprint, started at once and read when needed."""

    def __init__(self):
        self.processes = [self._start(hash_seed) for hash_seed in ("1", "2")]
        self._results: list[dict] | None = None

    @staticmethod
    def _start(hash_seed: str) -> subprocess.Popen:
        environment = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
        environment.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HANDBOOK_PROGRESS="0")
        return subprocess.Popen(
            [sys.executable, __file__],
            env=environment,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def results(self) -> list[dict]:
        if self._results is None:
            self._results = []
            for process in self.processes:
                stdout, stderr = process.communicate(timeout=600)
                if process.returncode:
                    raise RuntimeError(f"the fresh process failed:\n{stderr[-3000:]}")
                self._results.append(json.loads(stdout.splitlines()[-1]))
        return self._results

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def fresh_processes():
    processes = FreshProcesses()
    yield processes
    processes.stop()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("chapter_module", list(KEY_COMPUTATIONS))
def test_key_computation_gives_identical_results_every_time(chapter_module, fresh_processes):
    compute = KEY_COMPUTATIONS[chapter_module]
    first, second = _as_json(compute()), _as_json(compute())
    assert first == second, f"{chapter_module}: two runs in one process differ"
    one, other = (result[chapter_module] for result in fresh_processes.results())
    assert one == other, f"{chapter_module}: two fresh processes (PYTHONHASHSEED 1, 2) differ"
    assert first == one, f"{chapter_module}: this process and a fresh one differ"


def test_fingerprints_tell_values_apart():
    assert fingerprint(1.0, np.zeros(2)) == fingerprint(1.0, np.zeros(2))
    assert fingerprint(1.0) != fingerprint(1.0 + 2**-52)
    assert fingerprint(np.zeros(2, dtype=np.float32)) != fingerprint(np.zeros(2))
    assert fingerprint(torch.arange(3)) == fingerprint(np.arange(3))


if __name__ == "__main__":
    print(json.dumps(compute_all()))
