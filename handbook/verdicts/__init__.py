"""Every claim's verdict and note, decided by a tested function: a notebook measures, a verdict
function decides.

One module per chapter, named by the chapter's topic (``verdicts/attention.py`` for
``01_attention``). For each claim ``Cn`` of the article the module holds the claim's text and the
article's figure (one place per claim), the thresholds of its verdict as named constants that
say why their value, and one function ``cn(...)``: it takes the values the chapter measured, as
keyword arguments, and returns a :class:`handbook.claims.Finding` (claim, article value, measured
value and unit, verdict, note). A chapter records it with::

    claims.record(verdicts.attention.c2(final_loss=..., ...), chapter="01_attention", seed=SEED)

and no verdict is written in a notebook cell. These modules import only :mod:`handbook.claims`,
:mod:`handbook.i18n` and the standard library, so ``tests/test_verdicts.py`` checks every branch
on made-up values.

A record stays English (it is data: ``handbook verify`` compares records, and both editions show
the same ones). Each claim, article value, unit and note is written ``N_("... {name} ...")
.format(name=...)`` with named fields: :func:`handbook.i18n.N_` returns it unchanged and marks it
for the catalogs, and the ledger page shows it in the reader's language through
:func:`handbook.i18n.translate_text`. An optional clause is a message of its own, given whole to
one field. Verdict words are values programs read: never translated here.
"""

from handbook.verdicts import (
    attention,
    cases,
    compression,
    continual,
    data,
    digits,
    ethics,
    multimodal,
    optimization,
    serving,
    toolchain,
)

__all__ = [
    "attention",
    "cases",
    "compression",
    "continual",
    "data",
    "digits",
    "ethics",
    "multimodal",
    "optimization",
    "serving",
    "toolchain",
]
