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
