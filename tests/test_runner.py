import os

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from handbook import runner


def _notebook(path, *sources):
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


def test_smoke_mode_and_the_ledger_reach_the_kernel(tmp_path):
    notebook = _notebook(
        tmp_path / "probe.ipynb",
        "import os, handbook\n"
        "print('smoke', handbook.smoke_mode(), os.environ['HANDBOOK_LEDGER_DIR'], "
        "os.environ['HF_HUB_OFFLINE'], os.getcwd())",
    )
    environment = runner.notebook_environment(
        smoke=True, strict_exercises=True, ledger_dir=tmp_path / "ledger"
    )
    run = runner.execute_notebook(
        notebook, tmp_path / "out" / "probe.ipynb", environment=environment
    )
    assert run.ok, run.error
    text = nbformat.read(run.output, as_version=4).cells[0].outputs[0]["text"]
    assert text.split() == ["smoke", "True", str(tmp_path / "ledger"), "1", str(tmp_path)]


def test_a_failure_names_the_notebook_the_cell_and_the_error(tmp_path):
    notebook = _notebook(
        tmp_path / "broken.ipynb", "x = 1", "y = 2", "raise KeyError('the missing key')"
    )
    run = runner.execute_notebook(
        notebook,
        tmp_path / "out" / "broken.ipynb",
        environment=runner.notebook_environment(smoke=True, strict_exercises=True),
        kernel_log=tmp_path / "logs" / "broken.log",
    )
    assert not run.ok
    assert "broken.ipynb" in run.error
    assert "cell 2" in run.error and "raise KeyError" in run.error
    assert "KeyError" in run.error and "the missing key" in run.error
    assert f"(the kernel's log: {tmp_path / 'logs' / 'broken.log'})" in run.error


def test_a_kernel_s_stderr_goes_to_its_log_not_the_terminal(tmp_path, capfd):
    """What child processes (the kernel) write to file descriptor 2 lands in the log."""
    import subprocess
    import sys

    log = tmp_path / "logs" / "chapter.log"
    with runner.stderr_to(log):
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'gpu chatter')"], check=True)
    assert log.read_text() == "gpu chatter"
    assert "gpu chatter" not in capfd.readouterr().err
    print("after", file=sys.stderr)
    assert "after" in capfd.readouterr().err  # restored


def test_a_kernel_runs_its_exit_handlers_then_ends_without_tearing_down(tmp_path):
    """handbook.kernel_exit, loaded first in every kernel the runner starts: an exit handler a
    cell registers still runs, a temporary folder left open is still removed, and the kernel's
    process ends at once (papermill's end comes right after the last cell, where the teardown of
    torch's modules alone takes about a second)."""
    from datetime import datetime

    marker = tmp_path / "handler-ran"
    notebook = _notebook(
        tmp_path / "exit.ipynb",
        "import atexit, tempfile, torch\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "left_open = tempfile.TemporaryDirectory(prefix='kernel-exit-probe-')\n"
        "print(left_open.name)",
    )
    environment = runner.notebook_environment(smoke=True, strict_exercises=True)
    output = tmp_path / "out" / "exit.ipynb"
    run = runner.execute_notebook(notebook, output, environment=environment)
    assert run.ok, run.error
    executed = nbformat.read(run.output, as_version=4)
    assert marker.read_text() == "yes"
    folder = executed.cells[0].outputs[0]["text"].strip()
    assert folder and not os.path.exists(folder), "the temporary folder was not cleaned up"
    times = executed.metadata.papermill
    last_cell = datetime.fromisoformat(executed.cells[0].metadata.papermill["end_time"])
    after_last_cell = datetime.fromisoformat(times["end_time"]) - last_cell
    assert after_last_cell.total_seconds() < 0.6, after_last_cell
