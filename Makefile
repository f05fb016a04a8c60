# Optimization for Machine Learning: the two commands of README.md, and a few more for instructors.
#   make book   install everything into .venv, then build the site with every notebook executed
#   make test   run the whole test suite (labkit, every notebook, the book, the site)
# Each target calls the course's command line, `python -m coursetools COMMAND` (see coursetools/).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install book test lint handouts grade labs-gpu clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)"
	touch $(STAMP)

book: install
	$(BIN)/python -m coursetools book

test: install
	$(BIN)/python -m pytest tests -ra

lint: install
	$(BIN)/ruff check .

# Instructors (see labs/README_assignments.md):
#   make handouts                                   student notebooks + autograder zips in _build/assign/
#   make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name] [TIMEOUT=300]   grades.csv + feedback/ in OUT
handouts: install
	$(BIN)/python -m coursetools handouts

grade: handouts
	@test -n "$(SUBMISSIONS)" -a -n "$(OUT)" || { echo "usage: make grade SUBMISSIONS=dir OUT=dir [ASSIGNMENT=name] [TIMEOUT=300]"; exit 2; }
	$(BIN)/python -m coursetools grade "$(SUBMISSIONS)" --out "$(OUT)" $(if $(ASSIGNMENT),--assignment "$(ASSIGNMENT)") $(if $(TIMEOUT),--timeout $(TIMEOUT))

# Every lab at full size on a CUDA machine (FashionMNIST, 10 epochs): executed notebooks, figures
# and timings in _build/labs-gpu/ (see labs/README.md)
labs-gpu: install
	bash scripts/run_labs_gpu.sh

clean:
	rm -rf _build
