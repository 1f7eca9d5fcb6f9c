"""handbook.data: each from-scratch piece against the library that does the same job."""

import matplotlib
import numpy as np
import pytest
import torch

from handbook import bench, data, datasets, plots, train, translation

matplotlib.use("Agg")


# Validation -----------------------------------------------------------------------------------


def test_validation_keeps_or_rejects_every_row_with_a_reason():
    records = [
        {"text": "fine", "label": 1},
        {"text": "", "label": 0},
        {"label": 2},
        {"text": "x", "label": "two"},
        {"text": "y", "label": 9},
        {"text": 3, "label": 0},
        {"text": "z", "label": None},
        {"text": "ok", "label": np.int64(3)},
        {"text": "b", "label": True},
    ]
    report = data.validate_records(records, num_labels=4)
    assert len(report.kept) + len(report.rejected) == len(records)
    assert [row["text"] for row in report.kept] == ["fine", "ok"]
    assert report.reasons == {
        "empty text": 1,
        "label not an integer": 2,
        "label out of range": 1,
        "missing label": 1,
        "missing text": 1,
        "text not a string": 1,
    }
    assert report.dataset(["a", "b", "c", "d"])["label"] == [1, 3]


def test_validation_finds_exactly_the_rows_the_generator_broke():
    records = [{"text": f"row {i}", "label": i % 4} for i in range(200)]
    rows, broken = datasets.malformed_records(records, 30, seed=2)
    report = data.validate_records(rows, num_labels=4)
    assert {index: reason for index, reason, _ in report.rejected} == broken


# Deduplication --------------------------------------------------------------------------------


def test_exact_duplicates_ignore_case_punctuation_and_spacing():
    texts = ["Hello, world!", "hello world", "HELLO   WORLD.", "hello there", "Hello there?"]
    assert data.exact_duplicates(texts).tolist() == [-1, 0, 0, -1, 3]
    assert data.exact_duplicates([]).tolist() == []
    assert data.text_hash("A b") == data.text_hash(" a   B ")


def test_shingles_and_jaccard_against_scikit_learn():
    from sklearn.metrics import jaccard_score

    first, second = "the cat sat on the mat", "the cat sat on a mat"
    a, b = data.shingles(first, 3), data.shingles(second, 3)
    vocabulary = sorted(a | b)
    vectors = [[token in s for token in vocabulary] for s in (a, b)]
    assert data.jaccard(a, b) == pytest.approx(jaccard_score(*vectors))
    assert data.shingles("ab", 5) == {"ab"} and data.shingles("", 5) == set()
    assert data.jaccard(set(), set()) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        data.shingles("abc", 0)


@pytest.mark.parametrize(("num_perm", "seed"), [(16, 1), (128, 1), (64, 7)])
def test_minhash_signatures_equal_datasketch_legacy_bit_for_bit(num_perm, seed):
    from datasketch import MinHash

    hasher = data.MinHasher(num_perm, seed)
    for text in ["the cat sat on the mat", "a", "near duplicate detection with minhash"]:
        items = data.shingles(text, 3)
        reference = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
        for item in items:
            reference.update(item.encode("utf-8"))
        assert np.array_equal(hasher.signature(items), reference.hashvalues)
    empty = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
    assert np.array_equal(hasher.signature([]), empty.hashvalues)


def test_minhash_estimate_is_close_to_the_true_jaccard():
    rng = np.random.default_rng(0)
    hasher = data.MinHasher(256)
    for overlap in (0.2, 0.5, 0.8):
        common = {f"w{i}" for i in range(int(300 * overlap))}
        a = common | {f"a{i}" for i in range(300 - len(common))}
        b = common | {f"b{i}" for i in range(300 - len(common))}
        estimate = data.estimated_jaccard(hasher.signature(a), hasher.signature(b))
        assert estimate == pytest.approx(data.jaccard(a, b), abs=0.08)
    del rng


def test_lsh_candidates_equal_datasketch_minhash_lsh_with_the_same_bands():
    from datasketch import MinHash, MinHashLSH

    corpus = datasets.noisy_text_classification(150, seed=3, test_size=20)["train"]["text"]
    hasher = data.MinHasher(64)
    sets = [data.shingles(text) for text in corpus]
    signatures = hasher.signatures(sets)
    ours = data.lsh_candidate_pairs(signatures, bands=16)
    lsh = MinHashLSH(num_perm=64, params=(16, 4))
    sketches = []
    for index, signature in enumerate(signatures):
        sketch = MinHash(num_perm=64, hashvalues=signature, scheme="legacy")
        sketches.append(sketch)
        lsh.insert(index, sketch)
    theirs = {
        (min(i, j), max(i, j))
        for i, sketch in enumerate(sketches)
        for j in lsh.query(sketch)
        if i != j
    }
    assert ours == theirs and ours
    with pytest.raises(ValueError, match="divide"):
        data.lsh_candidate_pairs(signatures, bands=5)


def test_near_duplicates_find_the_injected_copies():
    train_split = datasets.noisy_text_classification(600, seed=0, test_size=20)["train"]
    truth = datasets.redundant_rows(train_split["duplicate_group"])
    found = data.near_duplicates(train_split["text"])
    scores = data.detection_scores(found >= 0, truth)
    assert scores.precision >= 0.95 and scores.recall >= 0.95
    exact = data.detection_scores(data.exact_duplicates(train_split["text"]) >= 0, truth)
    assert exact.precision == 1.0 and 0.3 < exact.recall < 0.7, "exact hashing misses edits"


def test_detection_scores_edge_cases():
    scores = data.detection_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    nothing = data.detection_scores(np.zeros(3), np.zeros(3))
    assert (nothing.precision, nothing.recall) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one shape"):
        data.detection_scores(np.zeros(3), np.zeros(4))


# Label errors ---------------------------------------------------------------------------------


def test_confident_learning_matches_cleanlab_and_finds_flipped_labels():
    from cleanlab.filter import find_label_issues

    train_split = datasets.noisy_text_classification(
        600, seed=1, test_size=20, exact_duplicates=0, near_duplicates=0
    )["train"]
    labels = np.array(train_split["label"])
    probabilities = data.out_of_fold_probabilities(train_split["text"], labels, folds=4)
    issues, confident = data.confident_learning_issues(labels, probabilities)
    reference = find_label_issues(labels, probabilities, filter_by="confident_learning")
    assert np.mean(issues == reference) >= 0.99
    scores = data.detection_scores(issues, np.array(train_split["label_flipped"]))
    assert scores.precision >= 0.4 and scores.recall >= 0.5, "twice the 20% base rate"
    assert confident.shape == labels.shape and confident.min() >= -1


def test_confident_learning_on_a_hand_made_example():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]]
    )
    issues, confident = data.confident_learning_issues(labels, probabilities)
    # thresholds: class 0 (0.9 + 0.8 + 0.1) / 3 = 0.6, class 1 (0.8 + 0.7 + 0.4) / 3 = 0.633
    assert issues.tolist() == [False, False, True, False, False, True]
    assert confident.tolist() == [0, 0, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="expected probabilities"):
        data.confident_learning_issues(labels, probabilities[:4])


# Augmentation ---------------------------------------------------------------------------------


def test_lexicon_synonyms_are_symmetric_and_cover_the_generator_topics():
    source = data.lexicon_synonyms()
    assert source("game") == ["fixture", "match"]
    assert source("Game") == ["fixture", "match"]
    assert source("unknownword") == []
    for groups in datasets.TOPIC_WORDS.values():
        for group in groups:
            for word in group:
                assert source(word), f"{word} has no synonym in the lexicon"


def test_wordnet_source_names_the_offline_default_when_missing():
    try:
        data.wordnet_synonyms()
    except LookupError as error:
        assert "lexicon_synonyms" in str(error)
        assert data.synonym_source("auto")("game") == ["fixture", "match"]
    with pytest.raises(ValueError, match="unknown synonym source"):
        data.synonym_source("thesaurus")


def test_synonym_replacement_keeps_length_label_and_punctuation():
    source = data.lexicon_synonyms()
    rng = np.random.default_rng(0)
    text = "The team won the match after the storm."
    new = data.replace_synonyms(text, source, rng, rate=0.5)
    assert new != text and len(new.split()) == len(text.split()) and new.endswith(".")
    assert data.replace_synonyms("nothing here", source, rng) == "nothing here"
    texts, labels = data.augment_with_synonyms([text, "A sunny day"], [0, 1], source, copies=2)
    assert len(texts) == 6 and labels == [0, 1, 0, 1, 0, 1]


# Bucketing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "batch_size", "pool"), [(1000, 32, 100), (1000, 32, 4), (7, 3, 2)]
)
def test_bucket_sampler_yields_every_index_once_with_less_padding(count, batch_size, pool):
    lengths = np.random.default_rng(0).integers(1, 50, count)
    sampler = data.BucketBatchSampler(lengths, batch_size, pool_batches=pool, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(count))
    assert max(len(batch) for batch in batches) <= batch_size
    random = list(data.random_batches(count, batch_size, seed=0))
    assert data.padding_ratio(batches, lengths) <= data.padding_ratio(random, lengths)
    assert list(sampler) != batches, "a new epoch draws new batches"


def test_full_pool_bucketing_cuts_padding_below_five_percent():
    lengths = np.random.default_rng(0).integers(1, 50, 4000)
    sampler = data.BucketBatchSampler(lengths, 64, pool_batches=100)
    assert data.padding_ratio(sampler.batches(0), lengths) < 0.05
    assert data.padding_ratio(list(data.random_batches(4000, 64)), lengths) > 0.4


def test_padding_ratio_by_hand():
    assert data.padding_ratio([[0, 1], [2]], [2, 4, 3]) == pytest.approx(2 / 11)
    assert data.padding_ratio([[0, 1]], [2, 4], [1, 1]) == pytest.approx(2 / 10)
    assert data.padding_ratio([], [1]) == 0.0


def test_trimmed_loader_cuts_each_batch_to_its_longest_row():
    source = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4]])
    target = torch.tensor([[1, 2, -100], [3, -100, -100], [1, 2, 3]])
    labels = torch.tensor([0, 1, 2])
    loader = data.trimmed_loader(
        source, target, labels, pad_values=(0, -100, None), batch_sampler=[[0, 1], [2]]
    )
    (s1, t1, l1), (s2, t2, l2) = list(loader)
    assert s1.tolist() == [[5, 6], [7, 0]] and t1.tolist() == [[1, 2], [3, -100]]
    assert s2.shape == (1, 4) and t2.shape == (1, 3) and l1.tolist() == [0, 1]
    assert data.row_lengths(source, 0).tolist() == [2, 1, 4]


# Translation and back-translation -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_task():
    corpus = datasets.number_words(max_number=200, seed=0)
    return translation.build_task(corpus)


def test_parallel_tensors_match_chapter_one_in_the_forward_direction(tiny_task):
    rows = tiny_task.data["train"]
    ours = data.parallel_tensors(
        rows["english"], rows["german"], tiny_task.source_tokenizer, tiny_task.target_tokenizer
    )
    theirs = translation.teacher_forcing_tensors(tiny_task, "train")
    for mine, reference in zip(ours, theirs, strict=True):
        assert torch.equal(mine, reference)


def test_bucketed_training_and_back_translation_run_in_both_directions(tiny_task):
    rows = tiny_task.data["train"].select(range(64))
    english, german = rows["english"], rows["german"]
    source, target = tiny_task.source_tokenizer, tiny_task.target_tokenizer
    reverse, history = data.train_translator(
        german, english, target, source, steps=4, batch_size=32, description="test"
    )
    assert len(history.train_loss) == 2 and np.isfinite(history.train_loss).all()
    synthetic = data.back_translate(reverse, german[:5], target, source)
    assert len(synthetic) == 5 and all(isinstance(text, str) for text in synthetic)


def test_round_trip_translates_to_the_pivot_and_back_with_the_right_tokenizers(monkeypatch):
    calls = []

    def fake_translate(model, texts, source_tokenizer, target_tokenizer):
        calls.append((model, source_tokenizer, target_tokenizer))
        return [f"{model}({text})" for text in texts]

    monkeypatch.setattr(data, "translate_with", fake_translate)
    paraphrases = data.round_trip(["one", "two"], "en->de", "de->en", "EN", "DE")

    assert paraphrases == ["de->en(en->de(one))", "de->en(en->de(two))"]
    assert calls == [("en->de", "EN", "DE"), ("de->en", "DE", "EN")]


def test_round_trip_paraphrases_one_text_per_input_with_trained_models(tiny_task):
    rows = tiny_task.data["train"].select(range(64))
    english, german = rows["english"], rows["german"]
    source, target = tiny_task.source_tokenizer, tiny_task.target_tokenizer
    forward, _ = data.train_translator(english, german, source, target, steps=2, batch_size=32)
    reverse, _ = data.train_translator(german, english, target, source, steps=2, batch_size=32)
    paraphrases = data.round_trip(english[:4], forward, reverse, source, target)
    assert len(paraphrases) == 4 and all(isinstance(text, str) for text in paraphrases)


def test_measure_epoch_reports_less_padding_when_bucketed(tiny_task):
    tensors = translation.teacher_forcing_tensors(tiny_task, "train")
    model = data.small_translator(tiny_task.source_vocab_size, tiny_task.target_vocab_size)
    random = data.measure_epoch(model, tensors, batch_size=32, bucketed=False)
    bucketed = data.measure_epoch(model, tensors, batch_size=32, bucketed=True)
    assert bucketed.padding < random.padding
    assert bucketed.tokens == random.tokens > 0 and bucketed.tokens_per_second > 0


def test_benchmarks_compare_random_and_bucketed_epochs():
    rows = data.benchmarks(smoke=True)
    assert [row.variant for row in rows] == ["random", "bucketed"]
    assert all(isinstance(row, bench.Measurement) and "padding" in row.detail for row in rows)


# Recommender ----------------------------------------------------------------------------------


def test_negative_sampling_adds_unseen_items_as_negatives():
    users, items, clicked = np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([1, 0, 1])
    new_users, new_items, new_clicked = data.sample_negatives(
        users, items, clicked, 5, per_click=3, seed=0
    )
    assert len(new_users) == 3 + 2 * 3 and new_clicked[3:].sum() == 0
    for user, item in zip(new_users[3:], new_items[3:], strict=True):
        assert item not in items[users == user]


def test_matrix_factorization_learns_better_than_chance():
    from sklearn.metrics import roc_auc_score

    logs = datasets.click_logs(n_users=150, n_items=60, impressions_per_user=20, seed=0)
    columns = [np.array(logs["train"][name]) for name in ("user", "item", "clicked")]
    model = data.train_recommender(*columns, 150, 60, steps=100)
    test = logs["test"]
    scores = data.click_scores(model, np.array(test["user"]), np.array(test["item"]))
    assert scores.shape == (len(test),)
    assert roc_auc_score(test["clicked"], scores) > 0.55


# Figures --------------------------------------------------------------------------------------


def test_padding_figure_has_one_panel_per_strategy():
    figure = plots.padding_per_batch({"random": [[3, 5], [2, 2]], "bucketed": [[2, 2], [3, 5]]})
    assert len(figure.axes) == 2 and "padding" in figure.axes[0].get_title()
    with pytest.raises(ValueError):
        plots.padding_per_batch({})


def test_detection_figure_draws_a_bar_per_detector_and_metric():
    figure = plots.detection_quality_bars(
        {"exact": {"precision": 1.0, "recall": 0.5}, "MinHash": {"precision": 0.9, "recall": 1.0}}
    )
    assert len(figure.axes[0].patches) == 4
    with pytest.raises(ValueError):
        plots.detection_quality_bars({})


def test_ignore_index_is_what_the_loader_trims():
    assert train.IGNORE_INDEX == -100
