"""From Theory to Practice: the companion package of the book.

One module per chapter (``attention``, ``optim``, ...) on top of a few shared services
(``datasets``, ``train``, ``bench``, ``claims``, ``plots``, ``exercises``). Importing
``handbook`` is cheap: heavy libraries are imported by the modules that need them.
"""

from handbook.config import smoke_mode

__version__ = "0.1.0"
__all__ = ["__version__", "smoke_mode"]
