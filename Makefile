# tabularnet: `make demo` and `make test` set everything up themselves from a clean clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# NOTE: a plain `torch` requirement pulls a multi-GB CUDA build; on CPU machines the pinned CPU build is
# installed first and pyproject's range then accepts it. GPU users: `make TORCH_SPEC=torch venv`.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast lint check bench bench-speed bench-accuracy bench-streaming bench-peers bench-gpu bench-onnx docs report-check tune-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,onnx,tune]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@echo "== training an MLP on Adult (official split), then testing the best checkpoint"
	$(BIN)/tabularnet fit --config configs/demo.yaml

# lint first (seconds): CI runs `make test`, so CI lints too
test: $(STAMP)
	$(BIN)/ruff check tabularnet tests bench scripts
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check tabularnet tests bench scripts
	$(BIN)/ruff format --check tabularnet tests bench scripts

check: lint test

bench: bench-speed bench-accuracy

bench-speed: $(STAMP)
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/speed.py --quick --batch-size 64
	$(BIN)/python bench/speed.py --quick --batch-size 1024
	$(BIN)/python bench/speed.py --model ft
	$(BIN)/python bench/startup.py

# not part of `bench`: needs a CUDA GPU (host vs device-resident batches, compile)
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu_speed.py

# not part of `bench`: ONNX export parity on Adult's test split for every model family and embedding (~3 minutes)
bench-onnx: $(STAMP)
	$(BIN)/python bench/onnx_parity.py

# JOBS: fits at once (bench/accuracy.py --jobs); on a GPU machine, e.g. `make bench-accuracy JOBS=8`
JOBS ?= 1
bench-accuracy: $(STAMP)
	$(BIN)/python bench/accuracy.py --jobs $(JOBS)
	$(BIN)/python bench/regression.py

# not part of `bench`: writes a 1.8 GiB Parquet file under $TMPDIR and trains on it (about 5 minutes on 2 idle cores)
bench-streaming: $(STAMP)
	$(BIN)/python bench/streaming.py

# not part of `bench`: tabularnet beside pytorch_tabular 1.2.0 (in its own venv, torch pinned first) on Adult
# (a few minutes on 2 idle cores). pytorch_tabular 1.2.0 imports `requests` without declaring it.
PEERS_VENV ?= bench/.peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP):
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(PEERS_VENV)/bin/python -m pip install -q pytorch_tabular==1.2.0 requests
	touch $(PEERS_STAMP)

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python bench/peers.py --peer-python $(PEERS_VENV)/bin/python

# README's configuration reference, regenerated from the constructors' signatures and docstrings
docs: $(STAMP)
	$(BIN)/python -m tabularnet.docs --write

# the HTML report rendered in headless Chromium (Debian's package, installed when no Chromium is found)
report-check: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$CHROMIUM" ] || \
		(apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python scripts/report_check.py

# two `tabularnet tune` workers share one study on a throwaway PostgreSQL server (Debian's package, installed when
# no initdb is found); every trial must be recorded once
tune-check: $(STAMP)
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$$PG_BIN" ] || \
		(apt-get update -qq && apt-get install -y -qq postgresql)
	$(BIN)/python scripts/tune_check.py

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
