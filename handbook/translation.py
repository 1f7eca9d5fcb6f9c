"""Chapter 1's experiment: translate English number words into German with a small Transformer.

The pieces between the corpus (:func:`handbook.datasets.number_words`) and the model
(:class:`handbook.models.Transformer`): tokenizers trained locally with HuggingFace
``tokenizers``, padded id tensors, a teacher-forcing loss, greedy translation and the scores
(BLEU and chrF from ``sacrebleu``, exact match). Chapters 2 and 3 reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handbook.train import IGNORE_INDEX

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


def train_word_tokenizer(texts: list[str]):
    """A word-level tokenizer (words and punctuation) for the English side."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, show_progress=False)
    )
    return tokenizer


def train_subword_tokenizer(texts: list[str], vocab_size: int = 128):
    """A byte-pair-encoding tokenizer for the German side, whose numbers are single long words.

    BPE learns the recurring pieces ("drei", "hundert", "und", "zwanzig") from the training
    texts alone; ``vocab_size`` counts the special tokens and the single characters. The
    trainer numbers the end-of-word symbols ("i</w>") in the order it meets them in a hash
    map, an order that changes from run to run, and a model trained on those ids would too:
    the vocabulary is renumbered in a fixed order (:func:`_renumbered`) before it is used.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix="</w>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return _renumbered(tokenizer)


def _renumbered(trained):
    """The same BPE tokenizer (same merges, same pieces) with ids in a fixed order: the special
    tokens, then the single symbols sorted, then the merged pieces in the order they were
    learned. Only the numbering changes, so encoding gives the same pieces as before."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    model = json.loads(trained.to_str())["model"]
    merges = [
        tuple(pair.split(" ")) if isinstance(pair, str) else tuple(pair) for pair in model["merges"]
    ]
    merged = [first + second for first, second in merges]
    symbols = sorted(set(model["vocab"]) - set(merged) - set(SPECIAL_TOKENS))
    order = SPECIAL_TOKENS + symbols + list(dict.fromkeys(merged))
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: index for index, token in enumerate(order)},
            merges=merges,
            unk_token=UNK,
            end_of_word_suffix="</w>",
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.BPEDecoder(suffix="</w>")
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


@dataclass
class TranslationTask:
    """A corpus split with its two tokenizers and the id of every special token."""

    data: object  # datasets.DatasetDict with "english" and "german" columns
    source_tokenizer: object
    target_tokenizer: object

    @property
    def pad_id(self) -> int:
        return self.target_tokenizer.token_to_id(PAD)

    @property
    def bos_id(self) -> int:
        return self.target_tokenizer.token_to_id(BOS)

    @property
    def eos_id(self) -> int:
        return self.target_tokenizer.token_to_id(EOS)

    @property
    def source_vocab_size(self) -> int:
        return self.source_tokenizer.get_vocab_size()

    @property
    def target_vocab_size(self) -> int:
        return self.target_tokenizer.get_vocab_size()


def build_task(data, target_vocab_size: int = 128) -> TranslationTask:
    """Train both tokenizers on the training split only (the test split stays unseen)."""
    source = train_word_tokenizer(data["train"]["english"])
    target = train_subword_tokenizer(data["train"]["german"], vocab_size=target_vocab_size)
    for tokenizer in (source, target):
        ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
        if ids != list(range(len(SPECIAL_TOKENS))):
            raise RuntimeError(f"special tokens should take ids 0-3, got {ids}")
    return TranslationTask(data, source, target)


def encode(
    texts: list[str], tokenizer, *, add_bos: bool = False, add_eos: bool = False, pad_id: int = 0
) -> torch.Tensor:
    """Token ids ``(batch, longest)``, right-padded with ``pad_id``."""
    if not texts:
        raise ValueError("expected at least one text to encode")
    bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
    rows = [
        [bos] * add_bos + encoding.ids + [eos] * add_eos
        for encoding in tokenizer.encode_batch(list(texts))
    ]
    width = max(len(row) for row in rows)
    return torch.tensor([row + [pad_id] * (width - len(row)) for row in rows], dtype=torch.long)


def teacher_forcing_tensors(task: TranslationTask, split: str):
    """``(source, target_in, target_out)`` for a split: ``target_in`` is ``[BOS] y``,
    ``target_out`` is ``y [EOS]`` with padding replaced by ``IGNORE_INDEX``; all ``(n, len)``."""
    rows = task.data[split]
    source = encode(rows["english"], task.source_tokenizer, pad_id=task.pad_id)
    target = encode(
        rows["german"], task.target_tokenizer, add_bos=True, add_eos=True, pad_id=task.pad_id
    )
    target_in, target_out = target[:, :-1], target[:, 1:].clone()
    target_out[target_out == task.pad_id] = IGNORE_INDEX
    return source, target_in, target_out


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
    """Cross-entropy over the non-padding positions.

    logits ``(batch, T, V)``, targets ``(batch, T)``.
    """
    return nn.functional.cross_entropy(
        logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
    )


def decode_ids(ids: torch.Tensor, task: TranslationTask) -> list[str]:
    """Generated ids ``(batch, len)`` (starting with BOS) -> German strings, cut at EOS."""
    texts = []
    for row in ids.tolist():
        tokens = [token for token in row[1:]]
        if task.eos_id in tokens:
            tokens = tokens[: tokens.index(task.eos_id)]
        tokens = [token for token in tokens if token != task.pad_id]
        texts.append(task.target_tokenizer.decode(tokens))
    return texts


@torch.no_grad()
def translate(
    model, texts: list[str], task: TranslationTask, *, max_len: int = 24, batch_size: int = 256
) -> list[str]:
    """Greedy translations of English ``texts`` into German strings."""
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(texts), batch_size):
        source = encode(
            texts[start : start + batch_size], task.source_tokenizer, pad_id=task.pad_id
        ).to(device)
        ids = model.greedy_decode(source, max_len=max_len, bos_id=task.bos_id, eos_id=task.eos_id)
        outputs.extend(decode_ids(ids.cpu(), task))
    return outputs


def characters(texts: list[str]) -> list[str]:
    """Each text as space-separated characters (``"drei"`` -> ``"d r e i"``), for BLEU."""
    return [" ".join(text.replace(" ", "_")) for text in texts]


@dataclass
class TranslationScores:
    """Corpus scores of a set of translations: character BLEU, chrF, exact match (0-100)."""

    bleu: float
    chrf: float
    exact_match: float


def score(hypotheses: list[str], references: list[str]) -> TranslationScores:
    """Score translations with sacrebleu.

    A German number is one word, so word-level BLEU would have no 2-, 3- or 4-grams to count
    and is 0 for almost everything; BLEU is computed over characters instead (4-grams of
    characters), and chrF, the character n-gram F-score made for compounding languages, on
    the words themselves. Neither is comparable with word-level BLEU on WMT14.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(
            f"expected one hypothesis per reference, got {len(hypotheses)} and {len(references)}"
        )
    if not references:
        raise ValueError("cannot score an empty set of translations")
    bleu = sacrebleu.corpus_bleu(characters(hypotheses), [characters(references)], tokenize="none")
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    exact = (
        100.0 * sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(references)
    )
    return TranslationScores(bleu=bleu.score, chrf=chrf.score, exact_match=exact)
