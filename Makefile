# One entry point for setting up and running the project. `make install` is idempotent:
# a second run finds the stamp files and does nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# fairseq's real runtime needs (ve-fairseq is installed with --no-deps so that its declared
# torchaudio requirement cannot pull in a second multi-GB torch).
FAIRSEQ_DEPS := "hydra-core>=1.3.2" "omegaconf>=2.3" bitarray "sacrebleu>=1.4.12" regex cffi tqdm packaging scikit-learn

.PHONY: install test test-fast demo benchmark clean

install: $(VENV)/.stamp-plugin

$(VENV)/.stamp-base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel "setuptools<81"
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q --no-deps ve-fairseq==0.12.3
	$(PIP) install -q $(FAIRSEQ_DEPS)
	touch $@

$(VENV)/.stamp-plugin: $(VENV)/.stamp-base setup.py
	$(PIP) install -q -e ".[test]"
	touch $@

test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadfile --durations=25 tests

test-fast: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadfile -m "not slow" tests

demo: install
	bash run_scripts/demo/run_demo.sh

benchmark: install
	$(PY) run_scripts/benchmark/benchmark_caption.py

clean:
	rm -rf $(VENV)
