# video-evaluator: `make help` lists the targets.
PYTHON ?= python3
# torch/torchvision first and pinned: on this project's machines they come from local disk;
# elsewhere pip fetches them (override TORCH_SPEC for another build, e.g. a CPU-only wheel).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help setup java demo test test-fast lint bench ui snapshots clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev,spark]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with dev dependencies (pyspark included)

java: ## a Java runtime for engine=spark (Debian openjdk-17-jre-headless, only when java is missing)
	.ci/java

demo: $(STAMP) ## generate the demo data and evaluate the demo models (poster + episode) into ./mlflow.db
	$(PY) scripts/make_demo_data.py --out demo_data
	rm -rf outputs/demo  # a run writes into a folder of its own: the previous demo's go
	$(VENV)/bin/video-eval data.experts=demo_data/experts.parquet data.predictions=demo_data/baseline.parquet model.name=poster-ranker model.version=1 hydra.run.dir=outputs/demo/baseline
	$(VENV)/bin/video-eval data.experts=demo_data/experts.parquet data.predictions=demo_data/candidate.parquet model.name=poster-ranker model.version=2 hydra.run.dir=outputs/demo/candidate
	$(VENV)/bin/video-eval task=episode data.episodes=demo_data/episodes_baseline.parquet data.slices=demo_data/episode_slices.parquet model.name=episode-reader model.version=1 hydra.run.dir=outputs/demo/episode_baseline
	$(VENV)/bin/video-eval task=episode data.episodes=demo_data/episodes_candidate.parquet data.slices=demo_data/episode_slices.parquet model.name=episode-reader model.version=2 hydra.run.dir=outputs/demo/episode_candidate
	@echo
	@echo "Look at the runs (experiments poster-frames and episode-verification):  $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (then http://127.0.0.1:5000)"
	$(PY) scripts/register_demo_models.py --tracking-uri sqlite:///mlflow.db --name poster-ranker --versions 1,2 --champion 1
	@# The gate exits 1 on REJECT (a decision, not a failure of the demo): 0 and 1 both end the demo.
	$(VENV)/bin/video-eval-promote mlflow.tracking_uri=sqlite:///mlflow.db model.name=poster-ranker model.version=2 hydra.run.dir=outputs/demo/promote || [ $$? -eq 1 ]

test: $(STAMP) java ## run the whole test suite (slow tests included)
	$(PY) -m pytest

test-fast: $(STAMP) java ## run the tests not marked slow
	$(PY) -m pytest -m "not slow"

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check evaluator tests scripts
	$(VENV)/bin/ruff format --check evaluator tests scripts
	$(VENV)/bin/mypy

bench: $(STAMP) ## whole video-eval vs a pandas script and the floor at 20k x 512-d; scaling to 1M videos (scripts/bench.py --help)
	$(PY) scripts/bench.py

ui: $(STAMP) ## open the MLflow UI on ./mlflow.db
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

snapshots: $(STAMP) ## screenshots of the MLflow UI and report.html into docs/images (after make demo)
	$(PY) scripts/ui_snapshot.py --db mlflow.db --out docs/images

clean: ## remove generated data, outputs and the local MLflow store
	rm -rf demo_data outputs multirun mlflow.db mlartifacts
