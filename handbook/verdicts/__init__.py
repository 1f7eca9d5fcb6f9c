"""Every claim's verdict and note, decided by a tested function: a notebook measures, a verdict
function decides.

One module per chapter, named by the chapter's topic (``verdicts/attention.py`` for
``01_attention``). For each claim ``Cn`` of the article the module holds the claim's text and the
article's figure (one place per claim), the thresholds of its verdict as named constants that
say why their value, and one function ``cn(...)``: it takes the values the chapter measured, as
keyword arguments, and returns a :class:`handbook.claims.Finding` (claim, article value, measured
value and unit, verdict, note). A chapter records it with::

    claims.record(verdicts.attention.c2(final_loss=..., ...), chapter="01_attention", seed=SEED)

and no verdict is written in a notebook cell. These modules import only :mod:`handbook.claims`
and the standard library, so ``tests/test_verdicts.py`` checks every branch on made-up values.
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
