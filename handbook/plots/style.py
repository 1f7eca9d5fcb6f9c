"""What every figure shares: matplotlib imported on first use, titles and layout, and the CJK font
that a figure drawn in Chinese needs (``HANDBOOK_LANG=zh_CN``, issue 25)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from handbook import i18n

#: The CJK font the install provides: the ``mplfonts`` package bundles it (a dependency of the
#: book), so a learner needs no system font for figures with Chinese labels.
CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"


def cjk_font_path() -> Path:
    """The bundled CJK font file (``mplfonts/fonts/NotoSansCJKsc-Regular.otf``), found without
    importing ``mplfonts`` (importing it loads its font manager). Raises ``RuntimeError`` naming
    the package when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        path = Path(folder) / "fonts" / CJK_FONT_FILE
        if path.is_file():
            return path
    where = f"no {CJK_FONT_FILE} under {folders[0]}/fonts" if folders else "it is not installed"
    raise RuntimeError(
        f"figures in Chinese need the CJK font of the {CJK_FONT_PACKAGE} package ({where}): "
        f"pip install {CJK_FONT_PACKAGE}"
    )


class _OneWeightOnly(logging.Filter):
    """Drops matplotlib's "findfont: Failed to find font weight bold for <family>, now using 400"
    for the bundled CJK font: it has one weight, so a bold label in Chinese is drawn in it
    regular, as expected, and the warning would otherwise print on stderr in the executed
    chapter (the site showed it under a figure of chapter 9)."""

    def __init__(self, family: str):
        super().__init__()
        self.family = family

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("findfont: Failed to find font weight") and self.family in message
        )


@functools.lru_cache(maxsize=1)
def _registered_cjk_family() -> str:
    """Add the bundled CJK font to matplotlib's font manager (once) and return its family."""
    from matplotlib import font_manager

    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    logging.getLogger(font_manager.__name__).addFilter(_OneWeightOnly(family))
    return family


def use_cjk_font() -> str:
    """Let figures show Chinese: register the bundled CJK font and put its family after the
    current families in ``font.family`` (and after the ``font.sans-serif`` list), so Latin text
    keeps its look and each glyph the first font lacks falls back to the CJK font (matplotlib
    falls back per glyph when ``font.family`` is a list, since 3.6). Idempotent; returns the
    CJK family's name (``"Noto Sans CJK SC"``)."""
    import matplotlib

    family = _registered_cjk_family()
    current = matplotlib.rcParams["font.family"]
    current = [current] if isinstance(current, str) else list(current)
    if family not in current:
        matplotlib.rcParams["font.family"] = [*current, family]
    sans_serif = list(matplotlib.rcParams["font.sans-serif"])
    if family not in sans_serif:
        matplotlib.rcParams["font.sans-serif"] = [*sans_serif, family]
    return family


def pyplot():
    """``matplotlib.pyplot``, with the CJK font in use when figures are drawn in a language other
    than English (:func:`handbook.i18n.current_language`); every figure function starts here."""
    import matplotlib.pyplot as plt

    if i18n.current_language() != i18n.ENGLISH:
        use_cjk_font()
    return plt


def finish(figure, axis, title: str | None):
    """Title the axis (if a title is given), tighten the layout, return the figure."""
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure
