"""From Theory to Practice: the companion package of the book.

A chapter is ``notebooks/NN_topic.ipynb``, and its code is found by its topic or its number:

- the lessons, one per chapter, named by topic: ``digits``, ``attention``, ``optimization``,
  ``data``, ``compression``, ``serving/``, ``cases``, ``continual``, ``multimodal``, ``ethics``,
  ``toolchain``; their figures in ``plots/<topic>.py``, their claims' verdicts in
  ``verdicts/<topic>.py``, their exercises in ``exercises/chNN.py``; a few modules serve one
  chapter beside its lesson (``translation`` for chapter 1, ``distributed`` and ``tracking``
  for chapter 10);
- the networks more than one chapter trains, in ``models/``;
- shared services the lessons use: ``datasets``, ``train``, ``bench``, ``claims`` (the ledger,
  the only reader of its files), ``plots``, ``exercises`` (checks, the student edition,
  grading); ``classroom/`` runs a class on one machine;
- the book pipeline, which no lesson imports except chapter 10's timing of it
  (``book.chapter_timings``): ``book`` (execute behind the ``cache``, stage, build the site,
  verify), ``runner`` (one notebook under papermill), ``learning_path``, ``ledger_page``,
  ``diagrams``, ``book_site``, and ``cli``, the ``handbook`` command, which only parses
  arguments and calls them.

Importing ``handbook`` is cheap: heavy libraries are imported by the modules that need them.
"""

from handbook.config import smoke_mode

__version__ = "0.1.0"
__all__ = ["__version__", "smoke_mode"]
