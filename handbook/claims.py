"""The claims ledger: every number the article quotes, beside the value measured here.

A notebook calls :func:`record` once per claim after measuring it; the record (one JSON file per
claim id) goes to :func:`handbook.config.ledger_dir`. ``handbook ledger`` / the book build turn
the records of the last run into the ledger page with :func:`render_markdown`. Nothing reaches
the ledger except through :func:`record`, that is, from a run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from handbook import config

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not measurable here")
CLAIM_IDS = tuple(f"C{number}" for number in range(1, 25))
_VERDICT_MARKS = {
    "reproduced": "✅ reproduced",
    "partly reproduced": "🟡 partly reproduced",
    "not reproduced": "❌ not reproduced",
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

    @property
    def number(self) -> int:
        return int(self.claim_id[1:])


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


def record(
    claim_id: str,
    *,
    claim: str,
    article_value: str,
    measured: float | None,
    unit: str,
    verdict: str,
    note: str,
    chapter: str,
    seed: int | None = None,
    ledger_dir: Path | None = None,
) -> ClaimRecord:
    """Write the record of ``claim_id`` (replacing an earlier one) and return it.

    ``measured`` is the number this run produced (``None`` only for "not measurable here"),
    ``unit`` its unit ("%", "x", "ms", "BLEU"...), ``chapter`` the notebook's file stem
    (``"00_digits"``), used for the link back from the ledger page.
    """
    _validate(claim_id, verdict, measured)
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
    )
    folder = Path(ledger_dir or config.ledger_dir())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{claim_id}.json").write_text(json.dumps(asdict(entry), indent=2) + "\n")
    print(
        f"ledger: {claim_id} {verdict} (measured {_format_value(entry)}; article: {article_value})"
    )
    return entry


def load_records(ledger_dir: Path | None = None) -> list[ClaimRecord]:
    """Every record in the ledger folder, ordered by claim number."""
    folder = Path(ledger_dir or config.ledger_dir())
    records = []
    for path in folder.glob("C*.json"):
        try:
            records.append(ClaimRecord(**json.loads(path.read_text())))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"corrupt ledger record {path}: {exc}") from exc
    return sorted(records, key=lambda entry: entry.number)


def _format_value(entry: ClaimRecord) -> str:
    if entry.measured is None:
        return "—"
    return f"{entry.measured:.4g} {entry.unit}".strip()


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
                    _format_value(entry),
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
