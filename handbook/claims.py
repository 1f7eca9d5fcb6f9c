"""The claims ledger: every number the article quotes, beside the value measured here.

A notebook calls :func:`record` once per claim after measuring it; the record (one JSON file per
claim id) goes to :func:`handbook.config.ledger_dir`. ``handbook ledger`` / the book build turn
the records of the last run into the ledger page with :func:`render_markdown`. Nothing reaches
the ledger except through :func:`record`, that is, from a run.

A timing ratio is recorded with its interval (``interval=(low, high)``, the interquartile range
of the per-round ratios of :func:`handbook.bench.compare`); its verdict comes from
:func:`interval_verdict`, which says "inconclusive on this machine" when the interval straddles
the article's figure. ``handbook verify`` re-runs chapters and compares their records with
:func:`compare_records`: values without an interval must be identical, intervals must overlap.

**The ledger's files.** A ledger is a folder with one JSON file per claim, named by its id
(``C23.json``). This module is their only reader and writer: the book pipeline
(:mod:`handbook.book`) and the execution cache go through :func:`load_records`,
:func:`records_of`, :func:`record_digests`, :func:`remove_records` and
:func:`remove_orphan_records`, never through the files' names.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path

from handbook import config
from handbook.i18n import N_, _

INCONCLUSIVE = "inconclusive on this machine"
VERDICTS = (
    "reproduced",
    "partly reproduced",
    "not reproduced",
    INCONCLUSIVE,
    "not measurable here",
)
CLAIM_IDS = tuple(f"C{number}" for number in range(1, 25))
_VERDICT_MARKS = {
    "reproduced": "✅ reproduced",
    "partly reproduced": "🟡 partly reproduced",
    "not reproduced": "❌ not reproduced",
    INCONCLUSIVE: "🔘 inconclusive on this machine",
    "not measurable here": "⚪ not measurable here",
}


@dataclass
class ClaimRecord:
    """One claim of the article and what this machine measured for it."""

    claim_id: str
    claim: str
    article_value: str
    measured: float | None
    unit: str
    verdict: str
    note: str
    chapter: str
    mode: str
    seed: int | None
    hardware: dict = field(default_factory=dict)
    recorded_at: str = ""
    measured_low: float | None = None
    measured_high: float | None = None
    timing: bool = False
    """Whether ``measured`` comes from wall-clock time (every record with an interval does; a
    one-shot timing, such as C23's ratio of two durations, has no interval)."""

    @property
    def number(self) -> int:
        return int(self.claim_id[1:])

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(low, high)`` around a timing value (its interquartile range over rounds), or None
        for a value that the same code must reproduce exactly."""
        if self.measured_low is None or self.measured_high is None:
            return None
        return (self.measured_low, self.measured_high)


def hardware_summary() -> dict:
    """CPU model, core count, GPU (if any), torch and Python versions of this machine."""
    summary = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "gpu": None,
        "python": platform.python_version(),
        "torch": None,
    }
    try:
        import torch
    except ImportError:
        return summary
    summary["torch"] = torch.__version__
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        summary["gpu"] = "Apple MPS"
    return summary


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _validate_interval(
    claim_id: str, measured: float | None, interval: tuple[float, float] | None
) -> None:
    if interval is None:
        return
    if measured is None:
        raise ValueError(f"{claim_id}: an interval needs a measured value inside it")
    try:
        low, high = (float(bound) for bound in interval)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{claim_id}: interval must be two numbers (low, high), got {interval!r}"
        ) from exc
    if not low <= float(measured) <= high:
        raise ValueError(
            f"{claim_id}: the interval ({low:.4g}, {high:.4g}) must contain the measured value "
            f"{float(measured):.4g}"
        )


#: How far apart two runs of one timing may land on this kind of machine, as a fraction of the
#: value. An interval is the spread of per-round ratios *within* one run; between two runs of the
#: same commit the whole distribution can shift (which core, what else the host runs): two full
#: builds moved C11's median by 16% while each interquartile range was about 15% wide.
#: :func:`compare_records` widens each interval by this much before asking whether they overlap,
#: and a verdict resting on a small timing effect can ask for this margin (``tolerance``).
RUN_TO_RUN_TOLERANCE = 0.10


def interval_verdict(
    interval: tuple[float, float],
    figure: float,
    *,
    above: str = "reproduced",
    below: str = "partly reproduced",
    tolerance: float = 0.0,
) -> str:
    """The verdict of a noisy measurement against the article's ``figure``: ``above`` when the
    whole interval is at or above ``figure * (1 + tolerance)``, ``below`` when the whole
    interval is under ``figure * (1 - tolerance)``, and "inconclusive on this machine" otherwise
    (this machine's noise cannot say on which side the value lies). ``tolerance``
    (:data:`RUN_TO_RUN_TOLERANCE`) keeps a verdict from resting on an effect smaller than the
    shift between two runs of the same code."""
    low, high = interval
    if low > high:
        raise ValueError(f"expected an interval with low <= high, got ({low}, {high})")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"expected 0 <= tolerance < 1, got {tolerance}")
    for verdict in (above, below):
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    if low >= figure * (1 + tolerance):
        return above
    if high < figure * (1 - tolerance):
        return below
    return INCONCLUSIVE


def _validate(claim_id: str, verdict: str, measured: float | None) -> None:
    if claim_id not in CLAIM_IDS:
        raise ValueError(
            f"unknown claim id {claim_id!r}: expected one of C1 ... C24 (the claims ledger page)"
        )
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    if verdict != "not measurable here" and measured is None:
        raise ValueError(
            f"{claim_id}: verdict {verdict!r} needs a measured value; "
            "use verdict='not measurable here' and say why in the note"
        )
    if measured is not None and not isinstance(measured, (int, float)):
        raise TypeError(f"{claim_id}: measured must be a number, got {type(measured).__name__}")


@dataclass(frozen=True)
class Finding:
    """What a verdict function of :mod:`handbook.verdicts` decided about one claim from the values
    a notebook measured: everything :func:`record` writes except the chapter and the seed."""

    claim_id: str
    claim: str
    article_value: str
    measured: float | None
    unit: str
    verdict: str
    note: str
    interval: tuple[float, float] | None = None
    timing: bool = False


def record(
    claim_id: str | Finding,
    *,
    claim: str | None = None,
    article_value: str | None = None,
    measured: float | None = None,
    unit: str | None = None,
    verdict: str | None = None,
    note: str | None = None,
    chapter: str,
    seed: int | None = None,
    ledger_dir: Path | None = None,
    interval: tuple[float, float] | None = None,
    timing: bool = False,
) -> ClaimRecord:
    """Write the record of ``claim_id`` (replacing an earlier one) and return it.

    The chapters pass a :class:`Finding` (``record(verdicts.attention.c2(...), chapter=...,
    seed=SEED)``), which carries every field below but ``chapter`` and ``seed``; the fields can
    also be given one by one. ``measured`` is the number this run produced (``None`` only for
    "not measurable here"), ``unit`` its unit ("%", "x", "ms", "BLEU"...), ``chapter`` the
    notebook's file stem (``"00_digits"``), used for the link back from the ledger page.
    ``interval``: for a timing value only, ``(low, high)`` around it (see
    :func:`interval_verdict`); a value without one is one the same code must reproduce exactly,
    unless ``timing=True`` says it is a one-shot timing (a ratio of two durations measured
    once), which a re-run cannot reproduce exactly.
    """
    fields = (claim, article_value, measured, unit, verdict, note, interval)
    if isinstance(claim_id, Finding):
        if any(value is not None for value in fields) or timing:
            raise TypeError(
                f"{claim_id.claim_id}: a Finding carries the claim's fields; pass only chapter, "
                "seed and ledger_dir with it"
            )
        claim_id, claim, article_value, measured, unit, verdict, note, interval, timing = astuple(
            claim_id
        )
    required = {"claim": claim, "article_value": article_value, "unit": unit, "verdict": verdict}
    missing = [name for name, value in {**required, "note": note}.items() if value is None]
    if missing:
        raise TypeError(f"{claim_id}: record() needs {', '.join(missing)}, or a Finding")
    _validate(claim_id, verdict, measured)
    _validate_interval(claim_id, measured, interval)
    entry = ClaimRecord(
        claim_id=claim_id,
        claim=claim,
        article_value=article_value,
        measured=None if measured is None else float(measured),
        unit=unit,
        verdict=verdict,
        note=note,
        chapter=chapter,
        mode="smoke" if config.smoke_mode() else "full",
        seed=seed,
        hardware=hardware_summary(),
        recorded_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        measured_low=None if interval is None else float(interval[0]),
        measured_high=None if interval is None else float(interval[1]),
        timing=bool(timing or interval is not None),
    )
    folder = Path(ledger_dir or config.ledger_dir())
    folder.mkdir(parents=True, exist_ok=True)
    _record_path(folder, claim_id).write_text(json.dumps(asdict(entry), indent=2) + "\n")
    print(
        N_("ledger: {claim_id} {verdict} (measured {measured}; article: {article})").format(
            claim_id=claim_id, verdict=verdict, measured=format_value(entry), article=article_value
        )
    )
    return entry


# The ledger's files -----------------------------------------------------------------------------


def _record_path(ledger_dir: Path, claim_id: str) -> Path:
    return Path(ledger_dir) / f"{claim_id}.json"


def _record_files(ledger_dir: Path | None) -> list[Path]:
    """The record files of a ledger folder (only those: the folder may hold more), by name."""
    return sorted(Path(ledger_dir or config.ledger_dir()).glob("C*.json"))


def _chapter_of(path: Path) -> str | None:
    """The chapter a record file names, or None when it cannot be read or names none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("chapter") if isinstance(data, dict) else None


def load_records(ledger_dir: Path | None = None) -> list[ClaimRecord]:
    """Every record in the ledger folder (default :func:`handbook.config.ledger_dir`), ordered by
    claim number; a record that is not one raises ``ValueError`` naming its file."""
    records = []
    for path in _record_files(ledger_dir):
        try:
            records.append(ClaimRecord(**json.loads(path.read_text())))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"corrupt ledger record {path}: {exc}") from exc
    return sorted(records, key=lambda entry: entry.number)


def records_of(ledger_dir: Path, chapters: Collection[str]) -> dict[str, ClaimRecord]:
    """The records of ``chapters`` (notebook stems) in a ledger folder, by claim id."""
    return {
        entry.claim_id: entry for entry in load_records(ledger_dir) if entry.chapter in chapters
    }


def record_digests(ledger_dir: Path, *, chapter: str | None = None) -> dict[str, str]:
    """``{claim id: SHA-256 of its record file}`` for every record of a ledger folder, or with
    ``chapter`` only for those that chapter wrote (records that cannot be read name no chapter).
    The execution cache keeps these to tell that a chapter's records are still the ones its last
    run wrote."""
    return {
        path.stem: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in _record_files(ledger_dir)
        if chapter is None or _chapter_of(path) == chapter
    }


def remove_records(ledger_dir: Path, claim_ids: Iterable[str] | None = None) -> None:
    """Remove the records ``claim_ids`` (default: every record, and only the records: the folder
    may hold other files); a record that is not there is no error."""
    if claim_ids is None:
        claim_ids = [path.stem for path in _record_files(ledger_dir)]
    for claim_id in claim_ids:
        _record_path(ledger_dir, claim_id).unlink(missing_ok=True)


def remove_orphan_records(ledger_dir: Path, chapters: Iterable[str]) -> list[str]:
    """Remove the records of chapters that are not in ``chapters`` (notebook stems), and those
    that name no chapter or cannot be read, so that a run of every chapter leaves exactly what
    the chapters recorded; returns the claim ids removed."""
    stems = set(chapters)
    removed = [path.stem for path in _record_files(ledger_dir) if _chapter_of(path) not in stems]
    remove_records(ledger_dir, removed)
    return removed


def verdict_word(verdict: str) -> str:
    """How a reader is told ``verdict`` in the current language (the glossary's fixed forms); a
    verdict it does not know is shown as it is."""
    words = {
        "reproduced": _("reproduced"),
        "partly reproduced": _("partly reproduced"),
        "not reproduced": _("not reproduced"),
        "inconclusive on this machine": _("inconclusive on this machine"),
        "not measurable here": _("not measurable here"),
        "not yet measured": _("not yet measured"),
    }
    return words.get(verdict, verdict)


def format_value(entry: ClaimRecord) -> str:
    """The measured value with its unit, and its interval when it has one:
    ``"3.81 (3.12–4.47) x faster"``."""
    if entry.measured is None:
        return "—"
    interval = entry.interval
    middle = "" if interval is None else f" ({interval[0]:.3g}–{interval[1]:.3g})"
    return f"{entry.measured:.4g}{middle} {entry.unit}".strip()


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(
    records: list[ClaimRecord], *, chapter_link_prefix: str = "../notebooks/"
) -> str:
    """The ledger as a MyST/Markdown table with a link to each claim's chapter.

    Claims with no record are listed as "not yet measured" so the page shows the whole article.
    """
    by_id = {entry.claim_id: entry for entry in records}
    lines = [
        "| claim | the article says | article's figure | measured here | verdict | note "
        "| chapter |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim_id in CLAIM_IDS:
        entry = by_id.get(claim_id)
        if entry is None:
            lines.append(f"| {claim_id} | | | | not yet measured | no chapter records it yet | |")
            continue
        link = f"[{entry.chapter}]({chapter_link_prefix}{entry.chapter}.ipynb)"
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    entry.claim_id,
                    entry.claim,
                    entry.article_value,
                    format_value(entry),
                    _VERDICT_MARKS[entry.verdict],
                    entry.note,
                    link,
                )
            )
            + " |"
        )
    lines.append("")
    lines.append(_provenance(records))
    return "\n".join(lines) + "\n"


def _provenance(records: list[ClaimRecord]) -> str:
    if not records:
        return "No claim has been measured in this build."
    machines = {json.dumps(entry.hardware, sort_keys=True) for entry in records}
    modes = sorted({entry.mode for entry in records})
    parts = []
    for machine in sorted(machines):
        hardware = json.loads(machine)
        gpu = hardware.get("gpu") or "no GPU"
        parts.append(
            f"{hardware.get('cpu')} ({hardware.get('cores')} cores), {gpu}, "
            f"torch {hardware.get('torch')}, Python {hardware.get('python')}"
        )
    counts = {verdict: sum(entry.verdict == verdict for entry in records) for verdict in VERDICTS}
    tally = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    return (
        f"Measured in {'/'.join(modes)} mode on: {'; '.join(parts)}. "
        f"{len(records)} of {len(CLAIM_IDS)} claims recorded: {tally}."
    )


@dataclass
class Comparison:
    """A claim's record in two ledgers: ``agrees`` is False when the value drifted;
    ``compared`` is False when one of the two runs could not measure a one-shot timing (C23
    times the chapters executed before it in the same run: a re-run of chapter 10 alone has
    none), which is neither a match nor a drift."""

    claim_id: str
    agrees: bool
    reason: str
    current: ClaimRecord | None
    rerun: ClaimRecord | None
    compared: bool = True

    def line(self) -> str:
        """One line: the claim, its status (same, DRIFT, or n/a: not compared), both values
        side by side, why."""
        status = ("same" if self.compared else "n/a") if self.agrees else "DRIFT"
        values = " | ".join(
            "—" if entry is None else f"{format_value(entry)} [{entry.verdict}]"
            for entry in (self.current, self.rerun)
        )
        return f"{self.claim_id:>4} {status:5} {values}: {self.reason}"


def widened(interval: tuple[float, float], tolerance: float = RUN_TO_RUN_TOLERANCE):
    """``interval`` widened by ``tolerance`` of each bound, the room two runs need."""
    low, high = interval
    return (low - abs(low) * tolerance, high + abs(high) * tolerance)


def compare_records(current: ClaimRecord | None, rerun: ClaimRecord | None) -> Comparison:
    """Does a re-run reproduce a record? Values that are not timings must be identical (the
    same code, seeds and machine give the same numbers); timing values must have intervals that
    overlap once each is widened by :data:`RUN_TO_RUN_TOLERANCE`; a one-shot timing (no
    interval) is compared by its verdict alone; both runs must be of the same mode (smoke or
    full). The verdicts must agree too, except that one may be "inconclusive on this machine"
    where the other is not: a verdict resting on a timing may cross into or out of the zone the
    machine's noise cannot decide."""
    claim_id = (current or rerun).claim_id
    if current is None:
        return Comparison(claim_id, False, "no record in the ledger to compare with", None, rerun)
    if rerun is None:
        return Comparison(claim_id, False, "the re-run did not record it", current, None)
    if current.mode != rerun.mode:
        return Comparison(
            claim_id,
            False,
            f"the ledger was measured in {current.mode} mode, the re-run in {rerun.mode} mode",
            current,
            rerun,
        )
    first, second = current.interval, rerun.interval
    if (first is None) != (second is None):
        return Comparison(
            claim_id, False, "one run gives an interval, the other does not", current, rerun
        )
    if first is not None and second is not None:
        if first[0] <= second[1] and second[0] <= first[1]:
            values_agree, reason = True, "timing intervals overlap"
        else:
            (low_1, high_1), (low_2, high_2) = widened(first), widened(second)
            values_agree = low_1 <= high_2 and low_2 <= high_1
            reason = (
                f"timing intervals overlap once widened by {RUN_TO_RUN_TOLERANCE:.0%} "
                "(the shift between two runs)"
                if values_agree
                else f"timing intervals do not overlap, even widened by {RUN_TO_RUN_TOLERANCE:.0%}"
            )
    elif current.timing and rerun.timing:
        if None in (current.measured, rerun.measured):
            unmeasured = "the re-run" if rerun.measured is None else "the ledger"
            return Comparison(
                claim_id,
                True,
                f"a one-shot timing that {unmeasured} could not measure "
                f"({(rerun if rerun.measured is None else current).verdict}): not compared",
                current,
                rerun,
                compared=False,
            )
        values_agree = True
        reason = "a one-shot timing (no interval): compared by its verdict"
    else:
        values_agree = current.measured == rerun.measured
        if values_agree:
            reason = "identical value"
        elif None in (current.measured, rerun.measured):
            reason = "measured in one run only"
        else:
            reason = f"values differ by {rerun.measured - current.measured:+.6g}"
    verdicts_agree = current.verdict == rerun.verdict or INCONCLUSIVE in (
        current.verdict,
        rerun.verdict,
    )
    if current.verdict != rerun.verdict:
        reason += f"; verdict {current.verdict} -> {rerun.verdict}"
    return Comparison(claim_id, values_agree and verdicts_agree, reason, current, rerun)
