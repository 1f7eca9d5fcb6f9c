# The few commands a person types. Each creates .venv and installs the project if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# No hub, no dataset downloads: the book builds with no network.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: book test lab student serve bench lint clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, this is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "could not create $(VENV): install Python's venv module (Debian/Ubuntu: apt install python3-venv)"; exit 1; }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## make book: execute every chapter in full mode, then build the HTML site into _build/html
book: $(STAMP)
	$(PY) -m handbook book

## make test: lint, unit tests, every notebook in smoke mode under nbval, then the site build
## (smoke results go to _build/smoke, never over the full-mode book of `make book`)
test: $(STAMP)
	$(PY) -m ruff check handbook tests notebooks
	$(PY) -m pytest tests
	HANDBOOK_BUILD_DIR=_build/smoke HANDBOOK_SMOKE=1 HANDBOOK_EXERCISES_STRICT=1 \
		$(PY) -m pytest --nbval-lax notebooks -p no:cacheprovider
	HANDBOOK_BUILD_DIR=_build/smoke $(PY) -m handbook book --smoke

## make lab: JupyterLab with a kernel named "Python (handbook)"
lab: $(STAMP)
	$(PY) -m ipykernel install --user --name handbook --display-name "Python (handbook)"
	$(VENV)/bin/jupyter lab

## make student: the student edition (solutions removed, outputs cleared) in student/
student: $(STAMP)
	$(PY) -m handbook student --out student

## make serve: the chapter-5 prediction server on http://127.0.0.1:8000 (docs at /docs);
## builds the model first (about 30 s) if _build/models/topics does not exist yet
serve: $(STAMP)
	$(PY) -m handbook serve $(SERVE_OPTIONS)

## make bench: every chapter's benchmarks, measured side by side in one run
bench: $(STAMP)
	$(PY) -c 'import litserve, bentoml' 2>/dev/null || $(PY) -m pip install --quiet -e ".[peers]"
	$(PY) -m handbook bench

lint: $(STAMP)
	$(PY) -m ruff check handbook tests notebooks

## make clean: remove build output (student/ and grades/ hold people's work: never removed)
clean:
	rm -rf _build
