"""The cache refuses an entry for every reason it can, and a damaged entry is never reused.

Each reason :func:`handbook.cache.reason_to_run` can give is produced here on purpose; entry
files cut short, edited or replaced by something else give a re-execution whose line says why,
never a crash and never a reuse. The pipeline's kernel is replaced by a fake that writes the
executed copy, so that these tests cost no kernel start (``tests/test_cache.py`` runs real ones).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from handbook import cache, claims, runner
from handbook.book import execute

SHA = "0" * 64


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A notebook, its folders, and a runner whose kernel is a fake that counts executions."""
    notebook = tmp_path / "probe.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), notebook)
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    executions = []

    def fake_kernel(notebook: Path, output: Path, *, environment: dict, kernel_log: Path):
        executions.append(notebook.name)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(f"executed {len(executions)}")
        (ledger / "C1.json").write_text(
            json.dumps({"chapter": notebook.stem, "run": len(executions)})
        )
        return runner.NotebookRun(notebook, output, 0.5)

    monkeypatch.setattr(runner, "execute_notebook", fake_kernel)
    environment = runner.notebook_environment(smoke=True, strict_exercises=True, ledger_dir=ledger)

    def run() -> tuple[runner.NotebookRun, str]:
        printed = io.StringIO()
        (done,) = execute(
            [notebook],
            tmp_path / "out",
            environment=environment,
            cache_dir=tmp_path / "cache",
            stream=printed,
        )
        return done, printed.getvalue()

    return {
        "notebook": notebook,
        "ledger": ledger,
        "entry": tmp_path / "cache" / "probe.json",
        "executed": tmp_path / "out" / "probe.ipynb",
        "executions": executions,
        "run": run,
    }


def test_an_intact_entry_is_reused_and_every_damaged_file_runs_the_chapter_again(book):
    first, line = book["run"]()
    assert not first.cached and "(not executed yet)" in line
    second, line = book["run"]()
    assert second.cached and "probe.ipynb ... cached (ran in 0.5 s last time)" in line

    damage = {
        "its executed copy is missing": lambda: book["executed"].unlink(),
        "its executed copy was changed": lambda: book["executed"].write_text("edited"),
        "its ledger record C1 is missing": lambda: (book["ledger"] / "C1.json").unlink(),
        "its ledger record C1 was changed": lambda: (book["ledger"] / "C1.json").write_text("{}"),
        "its cache entry probe.json is not valid JSON": lambda: book["entry"].write_text(
            book["entry"].read_text()[:40]
        ),
        "notebook changed": lambda: nbformat.write(
            new_notebook(cells=[new_code_cell("x = 2")]), book["notebook"]
        ),
    }
    for reason, apply in damage.items():
        apply()
        done, line = book["run"]()
        assert done.ok and not done.cached, reason
        assert f"ok in 0.5 s ({reason}" in line, line
        again, line = book["run"]()  # the run wrote a sound entry back
        assert again.cached, (reason, line)
    assert len(book["executions"]) == 1 + len(damage)


def _entry_text(book) -> str:
    book["run"]()
    return book["entry"].read_text()


def test_every_cut_of_an_entry_file_is_refused_never_reused(book):
    """What an interrupted write could leave (save_entry itself writes whole files only)."""
    text = _entry_text(book)
    components = json.loads(text)["components"]
    for end in range(0, len(text.rstrip()), 7):
        book["entry"].write_text(text[:end])
        entry = cache.load_entry(book["entry"].parent, book["notebook"])
        assert isinstance(entry, cache.UnreadableEntry), end
        reason = cache.reason_to_run(
            entry, components, book["executed"], claims.record_digests(book["ledger"])
        )
        assert reason.startswith("its cache entry probe.json is not valid JSON ("), reason


def _edited(text: str, **changes) -> str:
    data = json.loads(text)
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (lambda text: "", "is not valid JSON (Expecting value"),
        (lambda text: "\x00\xff garbage", "is not valid JSON"),
        (lambda text: "[" * 100_000 + "]" * 100_000, "is not valid JSON (maximum recursion"),
        (lambda text: "[1, 2]", "holds a JSON list where an object was expected"),
        (lambda text: '"probe"', "holds a JSON str where an object was expected"),
        (lambda text: _edited(text, claims=None), "lacks claims"),
        (lambda text: _edited(text, verdict="reproduced"), "has unknown fields 'verdict'"),
        (lambda text: _edited(text, key=7), "has a key that is not a string"),
        (lambda text: _edited(text, key="abc"), "has a key that is not a SHA-256"),
        (lambda text: _edited(text, executed_sha256="z" * 64), "executed_sha256 that is not"),
        (lambda text: _edited(text, components=["a"]), "components that are not a mapping"),
        (lambda text: _edited(text, claims={"C1": 5}), "claims that are not a mapping"),
        (lambda text: _edited(text, claims={"C1": "x"}), "hash of claim C1 that is not a SHA"),
        (lambda text: _edited(text, seconds="fast"), "seconds that are not a number"),
        (lambda text: _edited(text, seconds=True), "seconds that are not a number"),
        (
            lambda text: _edited(text, claims={"../../outside": SHA}),
            "names a claim '../../outside' that is not a ledger record",
        ),
    ],
)
def test_an_entry_that_is_not_a_whole_entry_says_what_is_wrong(book, content, problem):
    text = _entry_text(book)
    components = json.loads(text)["components"]
    book["entry"].write_bytes(content(text).encode("utf-8", "surrogateescape"))
    entry = cache.load_entry(book["entry"].parent, book["notebook"])
    assert isinstance(entry, cache.UnreadableEntry) and entry.claims == {}
    reason = cache.reason_to_run(
        entry, components, book["executed"], claims.record_digests(book["ledger"])
    )
    assert reason.startswith("its cache entry probe.json ") and problem in reason, reason


def test_an_unreadable_entry_file_is_a_reason_not_a_crash(book):
    text = _entry_text(book)
    book["entry"].write_bytes(b"\xff\xfe" + text.encode())
    entry = cache.load_entry(book["entry"].parent, book["notebook"])
    assert "is not valid JSON ('utf-8' codec can't decode" in entry.problem
    book["entry"].unlink()
    book["entry"].mkdir()  # something that is not a file at all
    entry = cache.load_entry(book["entry"].parent, book["notebook"])
    assert isinstance(entry, cache.UnreadableEntry) and entry.problem.startswith("cannot be read")
    book["entry"].rmdir()
    assert cache.load_entry(book["entry"].parent, book["notebook"]) is None


def test_a_forged_claim_id_never_reaches_a_file_outside_the_ledger(book):
    """An entry names the records its run wrote, and a rerun removes them first: a claim id
    that is a path would remove a file elsewhere. Such an entry is refused as a whole."""
    text = _entry_text(book)
    outside = book["ledger"].parent / "precious.json"
    outside.write_text("keep me")
    book["entry"].write_text(_edited(text, claims={"../precious": SHA}))
    done, line = book["run"]()
    assert not done.cached and "names a claim '../precious'" in line
    assert outside.read_text() == "keep me"


def test_each_part_of_the_key_names_itself_when_it_changes():
    old = {
        "key-version": "1",
        "notebook": "a",
        "mode": "smoke",
        "python": "CPython 3.11.7",
        "machine": "x86_64",
        "module:handbook/attention.py": "a",
        "module:handbook/plots/style.py": "a",
        "package:torch": "2.4.0",
    }
    changes = [
        ({"key-version": "2"}, "key-version changed"),
        ({"notebook": "b"}, "notebook changed"),
        ({"mode": "full"}, "mode or parameters changed"),
        ({"python": "CPython 3.12.1"}, "python changed"),
        ({"machine": "arm64"}, "machine changed"),
        ({"module:handbook/attention.py": "b"}, "handbook/attention.py changed"),
        ({"module:handbook/bench.py": "a"}, "handbook/bench.py now used"),
        ({"module:handbook/plots/style.py": None}, "handbook/plots/style.py no longer used"),
        ({"package:torch": "2.5.0"}, "torch 2.4.0 -> 2.5.0"),
        ({"package:numpy": "2.0.0"}, "numpy absent -> 2.0.0"),
        ({"package:torch": None}, "torch 2.4.0 -> absent"),
    ]
    for change, reason in changes:
        new = {**old, **change}
        new = {name: value for name, value in new.items() if value is not None}
        entry = cache.Entry("probe.ipynb", cache.digest(old), old, "out.ipynb", SHA, {}, 1.0)
        assert cache.reason_to_run(entry, new, Path("/nonexistent"), {}) == reason
    everything = {name: "changed" for name in old}
    assert cache.explain_change(old, everything).endswith(", 5 more")
    assert cache.explain_change(old, old) == "nothing changed"


def test_an_interrupted_save_leaves_the_previous_entry_whole(book, monkeypatch):
    text = _entry_text(book)
    entry = cache.Entry(**json.loads(text))

    def interrupted(self, data, encoding=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.save_entry(book["entry"].parent, entry)
    monkeypatch.undo()
    assert book["entry"].read_text() == text
