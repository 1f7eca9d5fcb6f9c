# The few commands a person types. Each creates .venv and installs the project if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# No hub, no dataset downloads: the book builds with no network.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: book test coverage test-python lab student serve bench mlflow lint clean peers graders diagrams classroom classroom-deps classroom-test

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, this is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "could not create $(VENV): install Python's venv module (Debian/Ubuntu: apt install python3-venv)"; exit 1; }

# pip compiles every installed .py file one at a time (about half of a 4-minute install here);
# compileall does the same on every core. A file this Python cannot compile (torch ships some
# for newer Pythons) is skipped, as pip skips it: hence `|| true`.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e ".[dev]"
	$(PY) -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(STAMP)

## make book: execute every chapter in full mode (only those whose inputs changed since the last
## run: see handbook/cache.py), then build the HTML site into _build/html. Installs the `peers`
## extra first (LitServe, BentoML): chapter 5 compares its server with them.
## `make book BOOK_OPTIONS=--force` executes every chapter again.
book: $(STAMP) peers
	$(PY) -m handbook book $(BOOK_OPTIONS)

# the optional servers chapter 5 and `make bench` compare handbook.serving with
peers: $(STAMP)
	@$(PY) -c 'import litserve, bentoml' 2>/dev/null || $(PY) -m pip install --quiet -e ".[peers]"

## make test: lint; every paragraph and message translated and current (handbook translations
## --check); unit tests (in parallel); every chapter executed once in smoke mode by
## papermill (exercises must pass) for the smoke site, which is then built; the site and
## JupyterLab in Chromium with the network cut (tests/browser); the student edition of every
## chapter under nbval (it must run to the end with every exercise "not done"), and chapter 0's
## Chinese student edition too.
## Smoke results go to _build/smoke, never over the full-mode book of `make book`; chapters
## whose inputs did not change since the last `make test` are not executed again.
## Installs the `peers` extra first: the peer comparison is tested, and under CI=true any skipped
## test fails (tests/ci_skips.py; tests/test_skips.py lists every skip and what it needs).
TEST_JOBS ?= 2
# each of the TEST_JOBS student-edition kernels gets its share of the cores (as the runner's
# threads_per_kernel gives the smoke book's kernels): more threads than cores make them wait
KERNEL_THREADS := $(shell $(PYTHON) -c 'import os; print(max(1, (os.cpu_count() or 1) // $(TEST_JOBS)))')
SMOKE := _build/smoke
test: $(STAMP) peers
	$(PY) -m ruff check handbook tests notebooks
	$(PY) -m handbook translations --check
	$(PY) -m pytest tests -n $(TEST_JOBS) --durations=10 --ignore=tests/browser --ignore=tests/classroom
	HANDBOOK_BUILD_DIR=$(SMOKE) $(PY) -m handbook book --smoke --jobs $(TEST_JOBS)
	$(PY) -m pytest tests/browser -p no:cacheprovider -q
	$(MAKE) --no-print-directory classroom-test
	$(PY) -m handbook student --out $(SMOKE)/student --force > /dev/null
	HANDBOOK_SMOKE=1 HANDBOOK_EXERCISES_EXPECT="not done" HANDBOOK_BUILD_DIR=$(SMOKE)/student-build \
		HANDBOOK_LEDGER_DIR=$(SMOKE)/student-ledger \
		OMP_NUM_THREADS=$(KERNEL_THREADS) MKL_NUM_THREADS=$(KERNEL_THREADS) OPENBLAS_NUM_THREADS=$(KERNEL_THREADS) \
		$(PY) -m pytest -p nbval --nbval-lax --nbval-current-env $(SMOKE)/student -n $(TEST_JOBS) --dist loadfile -p no:cacheprovider -q
	$(PY) -m handbook student 00_digits --lang zh_CN --out $(SMOKE)/student-zh --force > /dev/null
	HANDBOOK_SMOKE=1 HANDBOOK_EXERCISES_EXPECT="not done" HANDBOOK_BUILD_DIR=$(SMOKE)/student-build \
		HANDBOOK_LEDGER_DIR=$(SMOKE)/student-ledger \
		$(PY) -m pytest -p nbval --nbval-lax --nbval-current-env $(SMOKE)/student-zh -p no:cacheprovider -q

## make classroom ROSTER=roster.csv INSTRUCTOR=ada: a class on JupyterHub at http://127.0.0.1:8020
## (book/classroom.md): a Unix user jupyter-<name> and a generated password per student (the
## instructor's copy in .classroom/passwords.csv, mode 0600), each server with the student
## edition, the book's kernel and jupyterlab-myst. The roster is `handbook grade --roster`'s CSV
## (deploy/classroom/roster.example.csv). Needs root, Node and npm; installs JupyterHub (the
## `classroom` extra) and configurable-http-proxy (into .classroom/node). Then the instructor types
## `python -m handbook.classroom collect`, `grade --chapter 0`, `return`.
CLASSROOM := .classroom
CHP := $(CLASSROOM)/node/node_modules/.bin/configurable-http-proxy
classroom:
	@test "$$(id -u)" = 0 || { echo "make classroom needs root: it creates a Unix user per student (sudo make classroom ROSTER=... INSTRUCTOR=...)"; exit 1; }
	@test -n "$(ROSTER)" -a -n "$(INSTRUCTOR)" || { echo "usage: make classroom ROSTER=roster.csv INSTRUCTOR=name (the roster: handbook grade --roster's CSV, e.g. deploy/classroom/roster.example.csv)"; exit 1; }
	@$(MAKE) --no-print-directory classroom-deps
	$(PY) -m handbook.classroom start --roster $(ROSTER) --instructor $(INSTRUCTOR) $(CLASSROOM_OPTIONS)

# JupyterHub (the `classroom` extra) and Node's configurable-http-proxy, installed locally
classroom-deps: $(STAMP)
	@$(PY) -c 'import jupyterhub' 2>/dev/null || $(PY) -m pip install --quiet -e ".[classroom]"
	@test -x $(CHP) || { command -v npm >/dev/null || { echo "configurable-http-proxy needs Node and npm: apt-get install nodejs npm"; exit 1; }; \
		npm install --prefix $(CLASSROOM)/node --no-audit --no-fund --loglevel=error configurable-http-proxy; }

## make classroom-test: the class driven in Chromium (tests/classroom): two students log in, one
## solves exercise 0.2 in JupyterLab, neither reaches the other's server, files or the admin page,
## the instructor collects, grades (passed / not done) and returns the feedback; the Unix users it
## made are removed. Without root, Node or Chromium it skips saying what is missing (CI=true: fails).
classroom-test: $(STAMP)
	-@$(MAKE) --no-print-directory classroom-deps
	$(PY) -m pytest tests/classroom -p no:cacheprovider -q

## make coverage: branch coverage (coverage.py, .coveragerc) of the grader (handbook/exercises:
## grading, discovery, submission, reports, remote/, sandbox, similarity, export), the cache and
## the server over their own tests: a table per module
## here, the lines in _build/coverage/html. The figures are in the README.
COVERAGE_TESTS := tests/test_grading*.py tests/test_hostile_wire.py tests/test_sandbox.py tests/test_cache*.py \
	tests/test_serving_*.py
coverage: $(STAMP) peers
	mkdir -p _build/coverage
	$(PY) -m pytest $(COVERAGE_TESTS) -n $(TEST_JOBS) -p no:cacheprovider -q -m "not timing" \
		--cov --cov-config=.coveragerc --cov-report=term --cov-report=html

## make test-python VERSIONS="3.10 3.11 3.12 3.13": the unit tests (grading's sandbox included)
## in a virtual environment per Python version (.venv-3.X), from the interpreters this machine has
## (python3.X on PATH, or pyenv's); one line per version at the end. `make test` stays on one.
VERSIONS ?= 3.10 3.11 3.12 3.13
test-python:
	VERSIONS="$(VERSIONS)" TEST_JOBS=$(TEST_JOBS) bash .ci/python-matrix

## make lab: JupyterLab with a kernel named "Python (handbook)", installed inside .venv (not in
## your home folder); markdown renders as in the book (jupyterlab-myst). LAB_OPTIONS passes options.
## Installs JupyterLab's Chinese language pack (the `lab` extra): Settings > Language > 中文.
## For the Chinese edition: `make student LANG_EDITION=zh_CN` (checks then speak Chinese).
LAB_OPTIONS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	@$(PY) -c 'import jupyterlab_language_pack_zh_CN' 2>/dev/null || $(PY) -m pip install --quiet -e ".[lab]"
	$(PY) -m ipykernel install --sys-prefix --name handbook --display-name "Python (handbook)"
	$(VENV)/bin/jupyter lab $(LAB_OPTIONS)

## make student: the student edition (solutions removed, outputs cleared) in student/;
## LANG_EDITION=zh_CN writes the Chinese one (its own name: LANG is the process locale)
LANG_EDITION ?= en
student: $(STAMP)
	$(PY) -m handbook student --out student --lang $(LANG_EDITION)

## make serve: the chapter-5 prediction server on http://127.0.0.1:8000 (docs at /docs);
## builds the model first (about 50 s) if _build/models/topics does not exist yet
serve: $(STAMP)
	$(PY) -m handbook serve $(SERVE_OPTIONS)

## make graders: .venv-graders, the `graders` extra (otter-grader, nbgrader) over the book's packages
graders: $(STAMP)
	$(PY) -m handbook.exercises.peer_graders make-venv

## make bench: every chapter's benchmarks, measured side by side in one run;
## `make bench BENCH="attention serving.benchmarks"` runs only those modules' benchmarks
bench: $(STAMP) peers graders
	$(PY) -m handbook bench $(BENCH)

## make mlflow: MLflow's UI on http://127.0.0.1:5000 over the book's tracking store (_build/mlflow,
## or $$MLFLOW_TRACKING_URI); `make mlflow MLFLOW_OPTIONS="--port 5001"` passes options
mlflow: $(STAMP)
	$(PY) -m handbook.tracking ui $(MLFLOW_OPTIONS)

## make diagrams: render the concept diagrams whose source in notebooks/figures/src/ changed
## (Graphviz's dot draws the .dot files: apt install graphviz)
diagrams: $(STAMP)
	$(PY) -m handbook.diagrams

lint: $(STAMP)
	$(PY) -m ruff check handbook tests notebooks

## make clean: remove build output (student/ and grades/ hold people's work: never removed)
clean:
	rm -rf _build
