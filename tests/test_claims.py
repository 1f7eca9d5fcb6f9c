import json

import pytest

from handbook import claims


def _record(**overrides):
    arguments = dict(
        claim="INT8 quantization makes inference 3x faster",
        article_value="3x",
        measured=2.4,
        unit="x",
        verdict="partly reproduced",
        note="measured on a linear model",
        chapter="04_compression",
        seed=0,
    )
    arguments.update(overrides)
    return claims.record("C11", **arguments)


def test_record_writes_one_json_file_with_the_hardware(isolated_ledger):
    entry = _record()
    stored = json.loads((isolated_ledger / "C11.json").read_text())
    assert stored["measured"] == 2.4
    assert stored["verdict"] == "partly reproduced"
    assert stored["mode"] == "full"
    assert stored["hardware"]["cores"] >= 1
    assert stored["hardware"]["torch"]
    assert entry.number == 11


def test_record_notes_smoke_mode(monkeypatch, isolated_ledger):
    monkeypatch.setenv("HANDBOOK_SMOKE", "1")
    assert _record().mode == "smoke"


def test_recording_again_replaces_the_record(isolated_ledger):
    _record(measured=1.0)
    _record(measured=2.0)
    records = claims.load_records()
    assert [entry.measured for entry in records] == [2.0]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"verdict": "kind of"}, "unknown verdict 'kind of'"),
        ({"measured": None}, "needs a measured value"),
        ({"measured": "fast"}, "measured must be a number"),
    ],
)
def test_record_rejects_bad_input(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _record(**overrides)


def test_unknown_claim_id_is_rejected():
    with pytest.raises(ValueError, match="unknown claim id 'C99'"):
        claims.record(
            "C99",
            claim="",
            article_value="",
            measured=1,
            unit="",
            verdict="reproduced",
            note="",
            chapter="x",
        )


def test_not_measurable_needs_no_value(isolated_ledger):
    entry = claims.record(
        "C15",
        claim="+40% utilization",
        article_value="+40%",
        measured=None,
        unit="%",
        verdict="not measurable here",
        note="needs a cluster",
        chapter="05_serving",
    )
    assert entry.measured is None


def test_render_lists_every_claim_and_links_the_chapter(isolated_ledger):
    _record()
    table = claims.render_markdown(claims.load_records())
    rows = [line for line in table.splitlines() if line.startswith("| C")]
    assert len(rows) == 24
    c11 = next(row for row in rows if row.startswith("| C11 "))
    assert "[04_compression](../notebooks/04_compression.ipynb)" in c11
    assert "2.4 x" in c11 and "partly reproduced" in c11
    assert "1 of 24 claims recorded: 1 partly reproduced" in table


def test_render_escapes_pipes(isolated_ledger):
    _record(note="a | b")
    assert "a \\| b" in claims.render_markdown(claims.load_records())


def test_a_corrupt_record_is_named(isolated_ledger):
    isolated_ledger.mkdir(parents=True)
    (isolated_ledger / "C3.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt ledger record .*C3.json"):
        claims.load_records()


# Timing values: intervals, the "inconclusive" verdict, comparing two ledgers ------------------


def test_a_timing_value_is_stored_and_shown_with_its_interval(isolated_ledger):
    entry = _record(measured=3.8, interval=(3.1, 4.5))
    stored = json.loads((isolated_ledger / "C11.json").read_text())
    assert (stored["measured_low"], stored["measured_high"]) == (3.1, 4.5)
    assert entry.interval == (3.1, 4.5) and _record().interval is None
    _record(measured=3.8, interval=(3.1, 4.5))
    assert "| 3.8 (3.1–4.5) x |" in claims.render_markdown(claims.load_records())


def test_records_written_before_intervals_existed_still_load(isolated_ledger):
    _record()
    path = isolated_ledger / "C11.json"
    stored = json.loads(path.read_text())
    del stored["measured_low"], stored["measured_high"]
    path.write_text(json.dumps(stored))
    (entry,) = claims.load_records()
    assert entry.interval is None and entry.measured == 2.4


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"measured": 5.0, "interval": (3.1, 4.5)}, "must contain the measured value 5"),
        ({"interval": ("low", "high")}, "interval must be two numbers"),
        ({"interval": 3.0}, "interval must be two numbers"),
    ],
)
def test_bad_intervals_are_named(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _record(**overrides)


def test_interval_verdict_is_inconclusive_when_the_interval_straddles_the_figure():
    assert claims.interval_verdict((3.1, 4.5), 3.0) == "reproduced"
    assert claims.interval_verdict((3.0, 4.5), 3.0) == "reproduced"
    assert claims.interval_verdict((2.1, 2.9), 3.0) == "partly reproduced"
    assert claims.interval_verdict((2.1, 2.9), 3.0, below="not reproduced") == "not reproduced"
    assert claims.interval_verdict((2.5, 3.5), 3.0) == claims.INCONCLUSIVE
    assert claims.INCONCLUSIVE == "inconclusive on this machine"
    with pytest.raises(ValueError, match="low <= high"):
        claims.interval_verdict((4.0, 3.0), 3.0)
    with pytest.raises(ValueError, match="unknown verdict 'yes'"):
        claims.interval_verdict((4.0, 5.0), 3.0, above="yes")


def test_a_tolerance_keeps_a_verdict_off_an_effect_smaller_than_two_runs_differ():
    tolerance = claims.RUN_TO_RUN_TOLERANCE
    # two builds of one commit: bucketed epochs 0.96x and 1.07x "faster", both tight intervals
    assert claims.interval_verdict((0.95, 0.97), 1.0) == "partly reproduced"
    assert claims.interval_verdict((1.02, 1.11), 1.0) == "reproduced"
    assert claims.interval_verdict((0.95, 0.97), 1.0, tolerance=tolerance) == claims.INCONCLUSIVE
    assert claims.interval_verdict((1.02, 1.11), 1.0, tolerance=tolerance) == claims.INCONCLUSIVE
    assert claims.interval_verdict((1.12, 1.3), 1.0, tolerance=tolerance) == "reproduced"
    assert claims.interval_verdict((0.5, 0.85), 1.0, tolerance=tolerance) == "partly reproduced"
    with pytest.raises(ValueError, match="expected 0 <= tolerance < 1, got 1.0"):
        claims.interval_verdict((1.0, 2.0), 1.0, tolerance=1.0)


def test_intervals_a_run_apart_agree_once_widened_by_the_run_to_run_tolerance(tmp_path):
    comparison = claims.compare_records(
        _stored(tmp_path, "a", measured=7.5, interval=(6.93, 8.06)),
        _stored(tmp_path, "b", measured=6.3, interval=(6.01, 6.82)),
    )
    assert comparison.agrees
    assert comparison.reason == (
        "timing intervals overlap once widened by 10% (the shift between two runs)"
    )
    assert claims.widened((10.0, 20.0), 0.1) == pytest.approx((9.0, 22.0))


def test_a_one_shot_timing_is_compared_by_its_verdict(tmp_path):
    first = _stored(tmp_path, "a", measured=26.8, timing=True, verdict="reproduced")
    assert first.timing and claims.load_records(tmp_path / "a")[0].timing
    same = claims.compare_records(
        first, _stored(tmp_path, "b", measured=23.6, timing=True, verdict="reproduced")
    )
    assert same.agrees and same.reason == "a one-shot timing (no interval): compared by its verdict"
    moved = claims.compare_records(
        first, _stored(tmp_path, "c", measured=3.0, timing=True, verdict="partly reproduced")
    )
    assert not moved.agrees and "verdict reproduced -> partly reproduced" in moved.reason
    exact = claims.compare_records(
        _stored(tmp_path, "d", measured=26.8), _stored(tmp_path, "e", measured=23.6)
    )
    assert not exact.agrees and "values differ" in exact.reason


def test_a_one_shot_timing_one_run_could_not_measure_is_not_compared(tmp_path):
    """Chapter 10 re-run alone has no other chapter to time (C23): neither a match nor a drift,
    and said so. A value that is not a timing still drifts when a re-run loses it."""
    measured = _stored(tmp_path, "a", measured=26.8, timing=True, verdict="reproduced")
    alone = _stored(tmp_path, "b", measured=None, timing=True, verdict="not measurable here")
    comparison = claims.compare_records(measured, alone)
    assert comparison.agrees and not comparison.compared
    assert comparison.reason == (
        "a one-shot timing that the re-run could not measure (not measurable here): not compared"
    )
    assert comparison.line().split()[:2] == ["C11", "n/a"]
    backwards = claims.compare_records(alone, measured)
    assert not backwards.compared and "the ledger could not measure" in backwards.reason
    lost = claims.compare_records(
        _stored(tmp_path, "c", measured=98.0),
        _stored(tmp_path, "d", measured=None, verdict="not measurable here"),
    )
    assert not lost.agrees and lost.compared and lost.line().split()[1] == "DRIFT"
    assert lost.reason.startswith("measured in one run only")


def test_inconclusive_is_a_verdict_the_ledger_renders_and_counts(isolated_ledger):
    _record(measured=3.0, interval=(2.5, 3.5), verdict=claims.INCONCLUSIVE)
    table = claims.render_markdown(claims.load_records())
    assert "🔘 inconclusive on this machine" in table
    assert "1 of 24 claims recorded: 1 inconclusive on this machine" in table


def _stored(tmp_path, name, **overrides):
    return _record(ledger_dir=tmp_path / name, **overrides)


def test_compare_records_identical_values_and_overlapping_intervals_agree(tmp_path):
    same = claims.compare_records(_stored(tmp_path, "a"), _stored(tmp_path, "b"))
    assert same.agrees and same.reason == "identical value"
    timing = claims.compare_records(
        _stored(tmp_path, "a", measured=3.8, interval=(3.1, 4.5)),
        _stored(tmp_path, "b", measured=4.6, interval=(4.4, 5.0)),
    )
    assert timing.agrees and "overlap" in timing.reason
    assert "3.8 (3.1–4.5) x [partly reproduced] | 4.6 (4.4–5) x" in timing.line()


@pytest.mark.parametrize(
    "first, second, reason",
    [
        ({"measured": 2.4}, {"measured": 2.4000001}, "values differ by +1e-07"),
        ({"interval": (2.0, 3.0)}, {"measured": 5.0, "interval": (4.0, 6.0)}, "do not overlap"),
        ({}, {"verdict": "reproduced"}, "verdict partly reproduced -> reproduced"),
        ({}, {"interval": (2.0, 3.0)}, "one run gives an interval"),
    ],
)
def test_compare_records_flags_drift(tmp_path, first, second, reason):
    comparison = claims.compare_records(
        _stored(tmp_path, "a", **first), _stored(tmp_path, "b", **second)
    )
    assert not comparison.agrees and reason in comparison.reason
    assert "DRIFT" in comparison.line()


def test_a_verdict_may_move_into_or_out_of_inconclusive(tmp_path):
    comparison = claims.compare_records(
        _stored(tmp_path, "a", measured=3.2, interval=(3.1, 3.4), verdict="reproduced"),
        _stored(tmp_path, "b", measured=3.1, interval=(2.9, 3.3), verdict=claims.INCONCLUSIVE),
    )
    assert comparison.agrees
    assert comparison.reason == (
        "timing intervals overlap; verdict reproduced -> inconclusive on this machine"
    )


def test_compare_records_needs_both_records_of_one_mode(tmp_path, monkeypatch):
    full = _stored(tmp_path, "a")
    assert "did not record it" in claims.compare_records(full, None).reason
    assert "no record in the ledger" in claims.compare_records(None, full).reason
    monkeypatch.setenv("HANDBOOK_SMOKE", "1")
    smoke = _stored(tmp_path, "b")
    comparison = claims.compare_records(full, smoke)
    assert not comparison.agrees and "full mode, the re-run in smoke mode" in comparison.reason


# The ledger's files, read and written only here -----------------------------------------------


def _record_of(ledger, claim_id, chapter):
    return claims.record(
        claim_id,
        claim="probe",
        article_value="1",
        measured=1.0,
        unit="x",
        verdict="reproduced",
        note="n",
        chapter=chapter,
        ledger_dir=ledger,
    )


def test_records_of_a_chapter_and_their_digests(tmp_path):
    import hashlib

    _record_of(tmp_path, "C1", "00_digits")
    _record_of(tmp_path, "C2", "01_attention")
    (tmp_path / "notes.txt").write_text("mine")
    assert set(claims.records_of(tmp_path, {"01_attention"})) == {"C2"}
    (tmp_path / "C3.json").write_text("not json")  # names no chapter
    digests = claims.record_digests(tmp_path)
    assert set(digests) == {"C1", "C2", "C3"}
    assert digests["C1"] == hashlib.sha256((tmp_path / "C1.json").read_bytes()).hexdigest()
    assert claims.record_digests(tmp_path, chapter="00_digits") == {"C1": digests["C1"]}
    assert claims.record_digests(tmp_path / "nowhere") == {}


def test_removing_records_leaves_every_other_file(tmp_path):
    _record_of(tmp_path, "C1", "00_digits")
    _record_of(tmp_path, "C2", "00_digits")
    (tmp_path / "notes.txt").write_text("mine")
    claims.remove_records(tmp_path, ["C1", "C9"])  # C9 is not there: no error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["C2.json", "notes.txt"]
    claims.remove_records(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_orphan_records_are_those_of_no_current_chapter(tmp_path):
    _record_of(tmp_path, "C1", "00_digits")
    _record_of(tmp_path, "C2", "99_gone")
    (tmp_path / "C3.json").write_text("{")  # unreadable: names no chapter
    assert claims.remove_orphan_records(tmp_path, ["00_digits", "01_attention"]) == ["C2", "C3"]
    assert sorted(path.stem for path in tmp_path.glob("*.json")) == ["C1"]
