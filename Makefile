# The two commands a new user needs:
#   make run    install, then run the whole pipeline locally on the embedded broker
#   make test   install, then run every test (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-unit run proto lint bench clean model eval bench-model bench-routing bench-publish bench-pipeline fuzz bench-quick soak faults

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

test: install
	$(BIN)/python -m pytest tests

test-unit: install
	$(BIN)/python -m pytest tests/unit

# ARGS passes options through, e.g. make run ARGS="--rate 20 --duration 120 --seed 7"
run: install
	$(BIN)/cctriage-demo $(ARGS)

proto: install
	$(BIN)/python proto/generate.py
	$(BIN)/python -m cctriage_publish.schema

# Sentiment/stress model (models/MODEL_CARD.md). DATA is the shared labelled data folder.
DATA ?= ../shared/data
MODEL_WORK ?= build/model
model: install
	$(BIN)/pip install --quiet -e ".[dev,train]"
	nice -n 10 $(BIN)/python models/training/train.py --mode finetune --data-dir $(DATA) --work-dir $(MODEL_WORK)
	nice -n 10 $(BIN)/python models/training/export.py --checkpoint $(MODEL_WORK)/finetune.pt --data-dir $(DATA) --work-dir $(MODEL_WORK) --out models

eval: install
	$(BIN)/python -m cctriage_common.evaluate --data-dir $(DATA)

# The one benchmark command: every figure beside its issue target, one table, one JSON
# (bench/results/bench-<time>.json and latest.json). ARGS passes options, e.g. ARGS="--only routing".
bench: install
	$(BIN)/python bench/run_all.py $(ARGS)

# The same with small sizes and short runs (a smoke run; what the e2e test runs).
bench-quick: install
	$(BIN)/python bench/run_all.py --quick $(ARGS)

# Soak: the whole pipeline at 80% of its measured maximum for 10 minutes; memory and latency
# stable? Plot in docs/img/soak.png (matplotlib, the docs extra). ARGS="--duration 60" for a short run.
soak: install
	$(BIN)/pip install --quiet -e ".[dev,docs]"
	$(BIN)/python bench/soak.py $(ARGS)

bench-model: install
	$(BIN)/python bench/model_bench.py

# Routing service: decision latency at 10k agents / 50k waiting, route calls/s over gRPC, memory.
bench-routing: install
	nice -n 10 $(BIN)/python bench/routing_bench.py

# Publishing: validation cost and cctriage-publish throughput against bare protobuf/kafka-python.
bench-publish: install
	nice -n 10 $(BIN)/python bench/publish_bench.py

# Triage pipeline: end-to-end throughput vs. the model alone, p99 event -> route call, worker RSS.
bench-pipeline: install
	$(BIN)/python bench/pipeline_bench.py

# Bad-input campaign (issue 7), long run: ~50x the generated inputs of CI and a mixed stream of
# ~1,100 records through a real triage worker. Shorter: make fuzz FUZZ_EXAMPLES=500
FUZZ_EXAMPLES ?= 3000
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_CONVERSATIONS=60 FUZZ_RANDOM_INVALID=400 nice -n 10 \
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit/test_fuzz_events.py \
	tests/unit/test_fuzz_publish_cli.py tests/integration/test_fuzz_reconciliation.py

# Fault tests (issue 7), long run: the CI tests of tests/integration/test_faults.py with
# FAULT_LOAD_S seconds of load before and after each fault; figures to bench/results/faults.json.
FAULT_LOAD_S ?= 90
FAULT_RATE ?= 12
faults: install
	CCTRIAGE_FAULT_LOAD_S=$(FAULT_LOAD_S) CCTRIAGE_FAULT_RATE=$(FAULT_RATE) \
	CCTRIAGE_FAULTS_REPORT=bench/results/faults.json nice -n 10 \
	$(BIN)/python -m pytest -p no:cacheprovider -W ignore::DeprecationWarning tests/integration/test_faults.py

lint: install
	$(BIN)/ruff check services tests bench proto

clean:
	rm -rf $(VENV) .pytest_cache
