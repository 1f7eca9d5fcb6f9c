"""Every skip the suite can take, and why; under ``CI=true`` each one fails instead.

A skip hides a capability the README promises (the peer comparison, containment, peak memory,
the browser): ``tests/ci_skips.py`` turns it into a failure under ``CI=true``. The list below
is every place a test can skip, read from the sources, so that a new skip is noticed in review:
add it here with the capability it hides and what CI installs so that it runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
NAMESPACES = "the grader's containment needs Linux namespaces (util-linux unshare, setpriv)"
CLASSROOM = (
    "the class on JupyterHub needs root (a Unix user per student), JupyterHub, Node's "
    "configurable-http-proxy and Chromium: make classroom-test installs the first two, .ci/run "
    "Node, npm and Chromium"
)

#: (file below tests/, enclosing function or <module>) -> what the skip hides, what CI does.
ALLOWED_SKIPS = {
    ("test_serving_peers.py", "test_a_peer_serves_the_same_predictions_under_load"): (
        "LitServe or BentoML missing: the `peers` extra, which make test and .ci/run install"
    ),
    (
        "test_grading.py",
        "test_no_connection_leaves_the_sandbox_and_nothing_outside_it_is_written",
    ): NAMESPACES,
    ("test_hostile_wire.py", "test_writes_aimed_at_the_output_the_store_and_the_checkout_fail"): (
        NAMESPACES
    ),
    ("test_hostile_references.py", "<module>"): NAMESPACES,
    (
        "test_peer_graders.py",
        "test_handbook_grade_on_three_of_the_class_credits_what_it_should",
    ): NAMESPACES,
    ("test_sandbox.py", "<module>"): NAMESPACES,
    ("test_sharing.py", "<module>"): (
        "chapters share the machine only with SIGSTOP, fork and two cores (Linux and macOS; CI's "
        "machine has two)"
    ),
    ("test_sandbox.py", "test_another_users_files_are_closed_to_the_sandbox"): (
        "a grader that is not root shares its user id with its sandboxes: CI runs .ci/run as root"
    ),
    ("test_bench.py", "test_peak_memory_sees_a_large_allocation"): (
        "peak memory is read from Linux's /proc (CI runs Linux)"
    ),
    (
        "test_attention_experiments.py",
        "test_fresh_process_peaks_grow_linearly_for_chunked_and_quadratically_for_plain",
    ): "peak memory needs /proc/self/clear_refs (bench.cpu_peak_supported)",
    (
        "test_attention_experiments.py",
        "test_a_forked_child_reads_the_peak_a_newly_started_process_reads",
    ): "peak memory needs /proc/self/clear_refs (bench.cpu_peak_supported)",
    ("test_serving_load.py", "test_a_server_process_holds_no_file_open_before_it_starts"): (
        "counts /proc/self/fd (Linux)"
    ),
    ("test_mlflow_ui.py", "_browser_or_skip"): (
        "no Chromium: .ci/run installs Debian's (the test also fails by itself under CI)"
    ),
    ("test_diagrams.py", "<module>"): (
        "Graphviz's dot missing: the concept diagrams are not rendered (.ci/run installs graphviz)"
    ),
    ("classroom/test_classroom_hub.py", "browser"): CLASSROOM,
    ("classroom/test_classroom_hub.py", "hub"): CLASSROOM,
    ("browser/conftest.py", "<module>"): (
        "no Chromium or playwright: the browser suite is not collected (it fails under CI)"
    ),
}


def _is_skip(node: ast.AST) -> bool:
    """``pytest.skip(...)``, ``pytest.importorskip(...)``, ``pytest.mark.skip[if](...)``, and
    ``collect_ignore[_glob] = ...`` (a conftest that leaves tests out)."""
    if isinstance(node, ast.Assign):
        names = {target.id for target in node.targets if isinstance(target, ast.Name)}
        return bool(names & {"collect_ignore", "collect_ignore_glob"})
    if isinstance(node, ast.Call):
        node = node.func
    if not isinstance(node, ast.Attribute):
        return False
    dotted = ast.unparse(node)
    return dotted in {
        "pytest.skip",
        "pytest.importorskip",
        "pytest.mark.skip",
        "pytest.mark.skipif",
    }


def skips_in(path: Path) -> list[tuple[str, str, int]]:
    """``(enclosing function or <module>, source of the skip, line)`` for each skip in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in child.decorator_list:
                    if _is_skip(decorator):
                        found.append((child.name, ast.unparse(decorator), decorator.lineno))
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), child.name)
                continue
            if _is_skip(child):
                found.append((where, ast.unparse(child), child.lineno))
                continue  # its arguments hold no other skip
            visit(child, where)

    visit(tree, "<module>")
    return found


def all_skips() -> dict[tuple[str, str], list[str]]:
    skips: dict[tuple[str, str], list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS).as_posix()
        for where, source, line in skips_in(path):
            skips.setdefault((relative, where), []).append(f"{relative}:{line}: {source}")
    return skips


def test_every_skip_in_the_suite_is_listed_with_the_capability_it_hides():
    found = all_skips()
    new = {key: lines for key, lines in found.items() if key not in ALLOWED_SKIPS}
    gone = sorted(set(ALLOWED_SKIPS) - set(found))
    assert not new, (
        "a skip that is not in tests/test_skips.py's ALLOWED_SKIPS: "
        f"{sorted(line for lines in new.values() for line in lines)}; add it there with the "
        "capability it hides and what CI installs so that it runs (under CI=true it fails)"
    )
    assert not gone, f"ALLOWED_SKIPS lists skips that are no longer in the suite: {gone}"


def test_the_reader_finds_every_form_of_skip(tmp_path):
    source = tmp_path / "test_forms.py"
    source.write_text(
        "import pytest\n"
        "collect_ignore = ['x.py']\n"
        "np = pytest.importorskip('numpy')\n"
        "@pytest.mark.skipif(True, reason='a')\n"
        "def test_a():\n"
        "    pass\n"
        "@pytest.mark.skip\n"
        "def test_b():\n"
        "    pass\n"
        "def test_c():\n"
        "    if True:\n"
        "        pytest.skip('c')\n"
        "def test_d():\n"
        "    pytest.fail('not a skip')\n"
    )
    assert [(where, line) for where, _, line in skips_in(source)] == [
        ("<module>", 2),
        ("<module>", 3),
        ("test_a", 4),
        ("test_b", 7),
        ("test_c", 12),
    ]


SKIPPING_TESTS = """
import pytest

def test_skips_inside():
    pytest.skip("LitServe is not installed")

@pytest.mark.skipif(True, reason="needs Linux namespaces")
def test_skipped_by_a_mark():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False
"""


@pytest.mark.parametrize("ci", ["true", "0"])
def test_under_ci_a_skip_fails_naming_what_is_missing(pytester, monkeypatch, ci):
    pytester.makeconftest("from ci_skips import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_probe=SKIPPING_TESTS)
    monkeypatch.setenv("CI", ci)
    quiet = ("cacheprovider", "nbval", "schemathesis", "hypothesispytest", "xdist", "anyio")
    result = pytester.runpytest_inprocess(*(f"-pno:{name}" for name in quiet))
    if ci == "true":  # a skip decided by a mark fails in setup: pytest calls it an error
        result.assert_outcomes(failed=1, errors=1, xfailed=1)
        result.stdout.fnmatch_lines(
            [
                "*CI=true and this test was skipped: LitServe is not installed.*",
                "*CI=true and this test was skipped: needs Linux namespaces.*",
            ]
        )
    else:
        result.assert_outcomes(skipped=2, xfailed=1)
