"""Chapter 5: the served model, its checksummed artifact folder, and the three backends.

The references: ``safetensors`` reads the weights back, ONNX Runtime runs the exported graph
that the eager PyTorch module must agree with, ``hashlib`` recomputes every checksum.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from handbook.serving import backends
from handbook.serving import model as serve_model
from handbook.serving.artifact import (
    MANIFEST,
    ONNX_FP32,
    ONNX_INT8,
    PAD_ID,
    UNKNOWN_ID,
    WEIGHTS,
    ArtifactError,
    Vocabulary,
    load_artifact,
    verify_artifact,
    words,
)

pytest_plugins = ["serving_fixtures"]


# Vocabulary ------------------------------------------------------------------------------------


@pytest.fixture
def vocabulary():
    return Vocabulary(["<pad>", "<unk>", "apple", "ball", "cat"], max_tokens=4)


def test_encode_pads_to_the_longest_text_and_maps_unknown_words(vocabulary):
    ids = vocabulary.encode(["Apple ball", "cat, zebra!! apple", "ball"])

    assert ids.dtype == np.int64 and ids.shape == (3, 3)
    np.testing.assert_array_equal(ids, [[2, 3, PAD_ID], [4, UNKNOWN_ID, 2], [3, PAD_ID, PAD_ID]])


def test_encode_cuts_at_max_tokens(vocabulary):
    ids = vocabulary.encode(["apple ball cat apple ball cat", "cat"])

    assert ids.shape == (2, vocabulary.max_tokens)
    np.testing.assert_array_equal(ids[0], [2, 3, 4, 2])
    np.testing.assert_array_equal(ids[1], [4, PAD_ID, PAD_ID, PAD_ID])


@pytest.mark.parametrize("text", ["", "   ", "123 !?", "\n\t"])
def test_a_text_without_words_becomes_one_unknown_token(vocabulary, text):
    ids = vocabulary.encode([text, "apple ball"])

    np.testing.assert_array_equal(ids[0], [UNKNOWN_ID, PAD_ID])
    assert (vocabulary.encode([text]) == [[UNKNOWN_ID]]).all()


def test_from_texts_reserves_padding_and_unknown_and_sorts_the_words():
    built = Vocabulary.from_texts(["the Cat sat", "a cat"], max_tokens=8)

    assert built.tokens == ["<pad>", "<unk>", "a", "cat", "sat", "the"]
    assert len(built) == 6 and built.index["cat"] == 3 and built.max_tokens == 8
    assert words("It's 3 o'clock, OK?") == ["it", "s", "o", "clock", "ok"]


# The classifier -------------------------------------------------------------------------------


def test_padding_does_not_change_the_logits(artifact):
    short = "the striker scored in the final"
    longer = "rain and wind are expected over the city tomorrow with cold air from the north"
    alone = artifact.vocabulary.encode([short])
    batch = artifact.vocabulary.encode([short, longer])
    assert batch.shape[1] > alone.shape[1] and (batch[0, alone.shape[1] :] == PAD_ID).all()
    padded_by_hand = np.pad(alone, ((0, 0), (0, 20)), constant_values=PAD_ID)

    with torch.inference_mode():
        logits = [
            serve_model.load_network(artifact)(torch.from_numpy(ids))[0]
            for ids in (alone, batch, padded_by_hand)
        ]
    torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[2], logits[0], atol=1e-5, rtol=0)


def test_the_padding_embedding_is_zero_and_positions_cover_max_tokens(artifact):
    network = serve_model.load_network(artifact)
    assert network.embedding.padding_idx == PAD_ID
    assert torch.count_nonzero(network.embedding.weight[PAD_ID]) == 0
    assert network.positions.shape == (network.cfg.max_tokens, network.cfg.d_model)


# The artifact folder ---------------------------------------------------------------------------


def test_load_artifact_gives_the_logits_of_the_model_before_it_was_saved(built, artifact):
    ids = torch.from_numpy(artifact.vocabulary.encode(built.test_texts[:40]))
    network = serve_model.load_network(artifact)
    with torch.inference_mode():
        before, after = built.trained(ids), network(ids)

    assert not network.training
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    again = load_artifact(built.directory)
    with torch.inference_mode():
        torch.testing.assert_close(serve_model.load_network(again)(ids), before, atol=0, rtol=0)


def test_an_onnx_server_loads_its_model_without_importing_torch(model_dir, built):
    """A server of model.int8.onnx (the chapter's, the peers') never imports torch: its start-up
    is half of what it was. The network loads only when the eager backend asks for it."""
    script = f"""
import sys
from handbook.serving import app, artifact, backends
loaded = artifact.load_artifact({str(model_dir)!r})
backend = backends.make_backend("int8", loaded, threads=1)
probabilities = backend.predict_proba(loaded.vocabulary.encode({built.test_texts[:8]!r}))
print(probabilities.shape, sorted(m for m in ("torch", "datasets", "sklearn") if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == f"(8, {len(load_artifact(model_dir).labels)}) []"


def test_the_network_loads_in_eval_mode_from_the_verified_folder(model_dir):
    loaded = load_artifact(model_dir)
    network = serve_model.load_network(loaded)
    assert isinstance(network, serve_model.TopicClassifier) and not network.training
    assert network.cfg.vocab_size == len(loaded.vocabulary)


def test_the_manifest_describes_the_folder(model_dir, artifact):
    manifest = json.loads((model_dir / MANIFEST).read_text())
    weights_hash = hashlib.sha256((model_dir / WEIGHTS).read_bytes()).hexdigest()

    content = json.dumps(
        [weights_hash, manifest["labels"], manifest["vocabulary"], manifest["model"]],
        sort_keys=True,
    )
    expected = "topics-" + hashlib.sha256(content.encode()).hexdigest()[:12]
    assert manifest["version"] == expected == artifact.version
    assert manifest["sha256"] == {
        name: hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        for name in (WEIGHTS, ONNX_FP32, ONNX_INT8)
    }
    assert manifest["labels"] == artifact.labels == ["sports", "weather", "business", "technology"]
    assert manifest["vocabulary"][:2] == ["<pad>", "<unk>"]
    assert manifest["model"]["d_model"] == 32 and manifest["model"]["num_layers"] == 1
    assert manifest["model"]["vocab_size"] == len(manifest["vocabulary"])
    assert manifest["metrics"]["test_size"] == 100 and manifest["metrics"]["train_size"] == 300
    assert 0.0 <= manifest["metrics"]["test_accuracy"] <= 1.0


def test_the_weights_are_plain_safetensors_without_pickle(model_dir, artifact):
    from safetensors.torch import load_file

    raw = (model_dir / WEIGHTS).read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    assert not raw.startswith(b"PK") and b"\x80" not in raw[:2]  # not a torch.save zip/pickle

    tensors = load_file(model_dir / WEIGHTS)
    state = serve_model.load_network(artifact).state_dict()
    assert set(tensors) == set(state) == set(header) - {"__metadata__"}
    for name, tensor in tensors.items():
        assert torch.equal(tensor, state[name]), name


def _copy(model_dir, tmp_path):
    return shutil.copytree(model_dir, tmp_path / "copy")


@pytest.mark.parametrize("name", [WEIGHTS, ONNX_FP32, ONNX_INT8])
def test_a_flipped_byte_is_refused_naming_the_file(model_dir, tmp_path, name):
    folder = _copy(model_dir, tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))

    with pytest.raises(ArtifactError, match=rf"{name}.*does not match its manifest"):
        load_artifact(folder)
    with pytest.raises(ArtifactError, match=name):
        verify_artifact(folder)


def test_a_missing_file_is_refused(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    (folder / ONNX_INT8).unlink()

    with pytest.raises(ArtifactError, match=rf"{ONNX_INT8} is missing"):
        load_artifact(folder)


def test_a_missing_manifest_says_how_to_build_one(tmp_path):
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing") as caught:
        load_artifact(tmp_path)
    assert "--build-only" in str(caught.value) and str(tmp_path) in str(caught.value)


def test_a_broken_manifest_is_refused(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not a model manifest"):
        load_artifact(folder)
    (folder / MANIFEST).write_text(json.dumps({"version": "x"}))
    with pytest.raises(ArtifactError, match="not a model manifest"):
        load_artifact(folder)


def test_a_manifest_with_another_checksum_is_refused(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["sha256"][WEIGHTS] = "0" * 64  # the version no longer matches the weights' hash
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="was edited"):
        verify_artifact(folder)
    manifest["sha256"][ONNX_INT8] = "0" * 64  # not part of the version: the checksum catches it
    manifest["sha256"][WEIGHTS] = json.loads((model_dir / MANIFEST).read_text())["sha256"][WEIGHTS]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=ONNX_INT8):
        verify_artifact(folder)


@pytest.mark.parametrize(
    "edit",
    [
        lambda manifest: manifest["labels"].reverse(),
        lambda manifest: manifest["vocabulary"].append("goal"),
        lambda manifest: manifest["model"].update(max_tokens=8),
    ],
    ids=["labels swapped", "vocabulary grown", "sizes changed"],
)
def test_an_edited_manifest_is_refused(model_dir, tmp_path, edit):
    folder = _copy(model_dir, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    edit(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="was edited"):
        verify_artifact(folder)


# Backends --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_backends(artifact):
    return {name: backends.make_backend(name, artifact, threads=1) for name in backends.BACKENDS}


def _random_ids(vocab_size, batch, seq, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab_size, size=(batch, seq), dtype=np.int64)
    lengths = rng.integers(1, seq + 1, size=batch)
    lengths[0] = seq  # one full row, so the batch really is `seq` long
    for row, length in enumerate(lengths):
        ids[row, length:] = PAD_ID
    return ids


@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (3, 7), (16, 32), (5, 32)])
def test_onnx_fp32_matches_eager(all_backends, artifact, batch, seq):
    ids = _random_ids(len(artifact.vocabulary), batch, seq, seed=batch * 100 + seq)
    eager = all_backends["eager"].predict_proba(ids)
    onnx = all_backends["onnx"].predict_proba(ids)

    assert eager.shape == onnx.shape == (batch, len(artifact.labels))
    assert eager.dtype == onnx.dtype == np.float32
    np.testing.assert_allclose(onnx, eager, atol=1e-4, rtol=0)


def test_int8_agrees_with_eager_on_the_test_texts(all_backends, artifact, built):
    ids = artifact.vocabulary.encode(built.test_texts)
    eager = all_backends["eager"].predict_proba(ids)
    int8 = all_backends["int8"].predict_proba(ids)

    assert (eager.argmax(1) == int8.argmax(1)).mean() >= 0.9
    assert np.abs(int8 - eager).max() < 0.1
    assert not np.array_equal(int8, eager)  # the INT8 file really is a different network


def test_probabilities_sum_to_one(all_backends, artifact, built):
    ids = artifact.vocabulary.encode(built.test_texts[:33])
    for name, backend in all_backends.items():
        probabilities = backend.predict_proba(ids)
        assert backend.name == name
        assert (probabilities >= 0).all() and (probabilities <= 1).all(), name
        np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5, err_msg=name)


def test_eager_backend_matches_a_softmax_of_the_module(all_backends, artifact):
    ids = _random_ids(len(artifact.vocabulary), 4, 9, seed=3)
    with torch.inference_mode():
        expected = torch.softmax(
            serve_model.load_network(artifact)(torch.from_numpy(ids)), -1
        ).numpy()
    np.testing.assert_allclose(all_backends["eager"].predict_proba(ids), expected, atol=1e-6)


def test_an_unknown_backend_lists_the_choices(artifact):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'.*eager, onnx, int8"):
        backends.make_backend("tensorrt", artifact)
