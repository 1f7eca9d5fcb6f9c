"""Let a kernel started by the book pipeline exit as soon as its exit handlers have run.

:mod:`handbook.runner` imports this module first in every kernel it starts (before any cell).
Importing it registers :func:`finish`, which therefore runs *after* every exit handler a chapter
or a library registers later (``atexit`` calls them last in, first out): servers are stopped,
temporary folders removed, log files closed, as at any exit. What it skips is what follows them,
the interpreter's own teardown of every module: about 2 s for a kernel that imported PyTorch,
ONNX Runtime and scikit-learn, in which papermill waits for the process to end, once per chapter
(11 chapters: about 25 s of every ``make book``), while nothing is left to save.

A learner's own kernel (JupyterLab, nbval) never imports this module.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import weakref


def finish() -> None:
    """Run what the kernel registered before this module (pending ``weakref.finalize``
    finalizers, such as temporary folders, and closing logging's files), flush the standard
    streams, then end the process with status 0 without tearing down the modules."""
    weakref.finalize._exitfunc()  # registered at the kernel's start, so after ours: run it now
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # closed or replaced
            stream.flush()
    os._exit(0)


atexit.register(finish)
