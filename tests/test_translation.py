import pytest
import sacrebleu
import torch

from handbook import datasets, translation
from handbook.train import IGNORE_INDEX


@pytest.fixture(scope="module")
def task():
    return translation.build_task(datasets.number_words(max_number=2000, test_size=0.1, seed=0))


def test_tokenizers_round_trip_and_reserve_special_ids(task):
    assert (task.pad_id, task.bos_id, task.eos_id) == (0, 1, 2)
    german = task.data["test"]["german"][:20]
    ids = translation.encode(german, task.target_tokenizer, add_bos=True, add_eos=True)
    assert translation.decode_ids(ids, task) == german
    english = task.source_tokenizer.encode("three hundred and twelve").tokens
    assert english == ["three", "hundred", "and", "twelve"]


def test_subwords_are_learned_from_training_text_only(task):
    pieces = task.target_tokenizer.encode("dreihundertzwölf").tokens
    assert "".join(pieces).removesuffix("</w>") == "dreihundertzwölf"
    assert len(pieces) < len("dreihundertzwölf") / 2  # merged pieces, not characters


def test_encode_pads_on_the_right():
    tokenizer = translation.train_word_tokenizer(["one two three", "one"])
    ids = translation.encode(["one two three", "one"], tokenizer, add_eos=True, pad_id=0)
    assert ids.shape == (2, 4)
    assert ids[1, 2:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="at least one text"):
        translation.encode([], tokenizer)


def test_teacher_forcing_shifts_by_one_and_ignores_padding(task):
    source, target_in, target_out = translation.teacher_forcing_tensors(task, "test")
    assert source.shape[0] == target_in.shape[0] == target_out.shape[0] == len(task.data["test"])
    assert (target_in[:, 0] == task.bos_id).all()
    real = target_out != IGNORE_INDEX
    assert torch.equal(target_in[:, 1:][real[:, :-1]], target_out[:, :-1][real[:, :-1]])
    last = real.sum(dim=1) - 1
    assert (target_out[torch.arange(len(last)), last] == task.eos_id).all()


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    expected = torch.nn.functional.cross_entropy(
        torch.stack([logits[0, 0], logits[0, 1], logits[1, 0]]), torch.tensor([1, 2, 3])
    )
    assert translation.sequence_loss(logits, targets) == pytest.approx(float(expected), rel=1e-6)


def test_scores_match_sacrebleu_and_exact_match(task):
    references = task.data["test"]["german"][:50]
    hypotheses = list(references)
    hypotheses[0] = "eins"
    scores = translation.score(hypotheses, references)
    assert scores.exact_match == pytest.approx(98.0)
    direct = sacrebleu.corpus_bleu(
        translation.characters(hypotheses),
        [translation.characters(references)],
        tokenize="none",
    )
    assert scores.bleu == pytest.approx(direct.score)
    assert 90 < scores.bleu < 100 and 90 < scores.chrf < 100
    perfect = translation.score(references, references)
    assert perfect.bleu == pytest.approx(100.0) and perfect.exact_match == 100.0


def test_score_rejects_mismatched_lists(task):
    with pytest.raises(ValueError, match="one hypothesis per reference, got 1 and 2"):
        translation.score(["a"], ["a", "b"])
