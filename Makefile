# Optimization for Machine Learning: the two commands of README.md, and a few more for instructors.
#   make book   install everything into .venv, then build the site with every notebook executed
#   make test   run the whole test suite (labkit, every notebook, the book, the site)
#   make pdf    the same, and an error if the whole book's PDF cannot be printed (no chromium)
# Each target calls the course's command line, `python -m coursetools COMMAND` (see coursetools/).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Wheels that tests/test_colab.py installs offline where Colab lacks them (labkit's besides)
WHEELS := $(VENV)/wheelhouse/.downloaded

.PHONY: install book pdf test system-packages lint handouts grade release labs-gpu clean

install: $(STAMP) $(WHEELS)

# Two distributions, both editable: labkit (pyproject.toml, what students install) and the
# instructors' coursetools (coursetools/pyproject.toml, with its own dependencies).
$(STAMP): requirements.txt pyproject.toml coursetools/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e . -e ./coursetools
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)"
	touch $(STAMP)

$(WHEELS): requirements.txt | $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --dest $(VENV)/wheelhouse $$(grep -E '^(mlxtend|tqdm)==' requirements.txt)
	touch $@

book: install
	$(BIN)/python -m coursetools book

# The site and _build/html/optimization-for-ml.pdf, printed by Debian's chromium (no TeX; `make
# book` makes it too where chromium is installed): see coursetools/pdf.py
pdf: install system-packages
	$(BIN)/python -m coursetools book --pdf

test: install system-packages
	$(BIN)/python -m pytest tests -ra --durations=30

# What the tests need from Debian besides Python: chromium (tests/test_site_browser.py) and
# bubblewrap (the grader's sandbox). Installed here where this is root with apt; otherwise make
# stops with the one command to run.
SYSTEM_PACKAGES := /usr/bin/chromium:chromium /usr/bin/bwrap:bubblewrap
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  test -x "$${pair%%:*}" || missing="$$missing $${pair##*:}"; done; \
	test -z "$$missing" || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq $$missing; } \
	  || { echo "make test needs Debian's$$missing: run  sudo apt-get install -y$$missing" >&2; exit 1; }

lint: install
	$(BIN)/ruff check .

# Instructors (see labs/README.md):
#   make handouts                                   student notebooks + autograder zips in _build/assign/
#   make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name] [TIMEOUT=300] [GRADE_OPTS="..."]
#     grades.csv + feedback/ in OUT; GRADE_OPTS goes to the grader as it is, e.g.
#     GRADE_OPTS="--roster roster.csv --jobs 2 --cell-timeout 60 --only 'Ann Lee'"
handouts: install
	$(BIN)/python -m coursetools handouts

# Builds (when its master changed) only the handout of the assignment graded.
grade: install
	@test -n "$(SUBMISSIONS)" -a -n "$(OUT)" || { echo "usage: make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name] [TIMEOUT=300] [GRADE_OPTS=\"...\"]"; exit 2; }
	$(BIN)/python -m coursetools handouts "$(or $(ASSIGNMENT),$(notdir $(abspath $(SUBMISSIONS))))"
	$(BIN)/python -m coursetools grade "$(SUBMISSIONS)" --out "$(OUT)" $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)") $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(GRADE_OPTS)

# The public tree for students in _build/release/ (no master notebook, no solution, no hidden test):
# what is pushed to the public repository the site's buttons use (see coursetools/release.py)
release: install
	$(BIN)/python -m coursetools release

# Every lab at full size on a CUDA machine (FashionMNIST, 10 epochs): executed notebooks, figures
# and timings in _build/labs-gpu/, then the GPU benchmarks there too (see labs/README.md).
# LABS_GPU_ARGS adds options, e.g. LABS_GPU_ARGS=--synthetic on a machine without FashionMNIST.
labs-gpu: install
	$(BIN)/python -m coursetools labs-gpu --out _build/labs-gpu $(LABS_GPU_ARGS)
	$(BIN)/python benchmarks/optim_step_time.py --device cuda --out _build/labs-gpu/optim_step_time.json
	$(BIN)/python benchmarks/lecture_grid.py --device cuda --precision bf16 --grouping merged --cuda-graph --out _build/labs-gpu/lecture_grid.json

clean:
	rm -rf _build
