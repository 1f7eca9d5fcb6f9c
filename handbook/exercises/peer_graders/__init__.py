"""``handbook grade`` measured against otter-grader and nbgrader on the same 30 submissions.

Chapter 0's five exercises are converted into each tool's format (:func:`otter_master_notebook`,
:func:`nbgrader_source_notebook`), and one class of 30 submissions (:func:`class_of_30`) is
written three times, once per format, from the same solution cells: honest, wrong, not done,
forged, hostile, borrowed from the book's reference implementations, and copied with renamed
variables. Each submission carries the exercises it *should* be credited with, so "grades right
out of 30" is counted, not judged.

The peers run from ``.venv-graders`` (``make bench`` makes it: otter-grader pins ``wrapt<2``,
which would downgrade the book's environment, and both add Jupyter server extensions to it). Every
tool runs inside :func:`contained`: a throwaway PID and network namespace (its own loopback,
where a listener counts the connections a submission makes; every process in it dies with it),
the peers under an address-space and a wall-clock limit, and the fork bomb and the memory hog
are bounded (:data:`BOMB_CHILDREN`, :data:`HOG_BYTES`), so that what a peer lets through cannot
harm the shared machine. What *the tool* contained is read from observables the wrapper does not
decide (:func:`score`): the probe's connections, the canary file, the processes left behind, the
largest resident set, and whether the wall limit had to stop the run.

``python -m handbook.exercises.peer_graders`` measures and writes ``_build/bench/graders.md``;
``--update-page`` also writes the table the book's *How to use* page includes.

The parts, one job each: :mod:`.answers` (the answer cells), :mod:`.submissions` (the class
of 30), :mod:`.formats` (chapter 0 in otter's and nbgrader's formats), :mod:`.contain` (the
throwaway namespace), :mod:`.run` (each tool's run and its output), :mod:`.table` (scores,
table, page, ``make bench``), ``__main__`` (the command line). Their public names are
re-exported here: ``handbook.exercises.peer_graders.class_of_30`` and the others still work.
"""

from handbook.exercises.peer_graders.answers import (
    BOMB_CHILDREN,
    HOG_BYTES,
    PROBE_PORT,
)
from handbook.exercises.peer_graders.contain import (
    RUN_WALL_S,
    WRAPPER_ADDRESS_SPACE,
    contain_main,
    contained,
    otter_pool_main,
)
from handbook.exercises.peer_graders.formats import (
    book_solutions,
    by_marker,
    by_tag,
    fill_in,
    nbgrader_source_notebook,
    otter_master_notebook,
    peer_tests,
)
from handbook.exercises.peer_graders.run import (
    CELL_TIMEOUT_S,
    GRADERS_VENV,
    ToolRun,
    handbook_results,
    make_graders_venv,
    merge_runs,
    nbgrader_results,
    otter_results,
    run_handbook,
    run_nbgrader,
    run_otter,
)
from handbook.exercises.peer_graders.submissions import (
    ATTACKS,
    CATEGORIES,
    EXERCISES,
    Submission,
    class_of_30,
    rename_variables,
)
from handbook.exercises.peer_graders.table import (
    BENCH_COMMAND,
    PAGE_INCLUDE,
    benchmarks,
    machine_description,
    markdown_table,
    measure,
    says_expected,
    score,
    write_report,
)

__all__ = [
    "ATTACKS",
    "BENCH_COMMAND",
    "BOMB_CHILDREN",
    "CATEGORIES",
    "CELL_TIMEOUT_S",
    "EXERCISES",
    "GRADERS_VENV",
    "HOG_BYTES",
    "PAGE_INCLUDE",
    "PROBE_PORT",
    "RUN_WALL_S",
    "Submission",
    "ToolRun",
    "WRAPPER_ADDRESS_SPACE",
    "benchmarks",
    "book_solutions",
    "by_marker",
    "by_tag",
    "class_of_30",
    "contain_main",
    "contained",
    "fill_in",
    "handbook_results",
    "machine_description",
    "make_graders_venv",
    "markdown_table",
    "measure",
    "merge_runs",
    "nbgrader_results",
    "nbgrader_source_notebook",
    "otter_master_notebook",
    "otter_pool_main",
    "otter_results",
    "peer_tests",
    "rename_variables",
    "run_handbook",
    "run_nbgrader",
    "run_otter",
    "says_expected",
    "score",
    "write_report",
]
