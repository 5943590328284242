# Set-up is the project's own job: every target creates .venv and installs into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: install demo test bench bench-scale eval-extraction clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info >= (3, 11), "cxrvqa needs Python >= 3.11, found " + sys.version' 
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	$(BIN)/python -c "import cxrvqa.cli, flows.build, spacy, pydicom, duckdb, openjpeg, libjpeg, rle, prefect_dask" 
	@# the project's bytecode, as a wheel install writes it: with PYTHONDONTWRITEBYTECODE set, every process
	@# (a build's flow, its forkserver) compiled the sources again
	$(BIN)/python -m compileall -q src flows
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cxrvqa build --demo --out $(DEMO_OUT)
	$(BIN)/cxrvqa audit --out $(DEMO_OUT) --html $(DEMO_OUT)/audit.html > $(DEMO_OUT)/audit.txt
	$(BIN)/cxrvqa export --out $(DEMO_OUT) --format jsonl --dest $(DEMO_OUT)/export/qa.jsonl
	$(BIN)/cxrvqa export --out $(DEMO_OUT) --format parquet --dest $(DEMO_OUT)/export/parquet --min-grade B
	@echo
	@echo "demo dataset:     $(DEMO_OUT)/cxrvqa.duckdb (cxrvqa status --out $(DEMO_OUT))"
	@echo "HTML audit:       $(DEMO_OUT)/audit.html (open it in a browser; terminal audit in $(DEMO_OUT)/audit.txt)"
	@echo "QA items (jsonl): $(DEMO_OUT)/export/qa.jsonl"
	@echo "Parquet (>= B):   $(DEMO_OUT)/export/parquet"

test: $(STAMP)
	$(BIN)/ruff format --check src flows tests bench
	$(BIN)/ruff check src flows tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	CXRVQA_DATA_DIR=$${CXRVQA_DATA_DIR:-../shared/data} $(BIN)/python bench/bench_images.py
	CXRVQA_DATA_DIR=$${CXRVQA_DATA_DIR:-../shared/data} $(BIN)/python bench/eval_extraction.py

bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py --studies 2000 --image-studies 200

eval-extraction: $(STAMP)
	CXRVQA_DATA_DIR=$${CXRVQA_DATA_DIR:-../shared/data} $(BIN)/python bench/eval_extraction.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
