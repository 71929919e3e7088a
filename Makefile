# The two entry points are `make run` and `make test`; everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck contracts pytest soak bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the integration tests need (Chromium renders the diagrams; OpenMPI runs
# tejido.mpi's mpi backend). Installed only
# when running as root and missing; elsewhere the browser tests report what is missing.
system-deps:
	@if [ "$$(id -u)" = "0" ] && ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium (Debian) for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| { echo "apt-get install chromium failed"; exit 1; }; \
	fi
	@if [ "$$(id -u)" = "0" ] && ! command -v mpirun >/dev/null 2>&1; then \
		echo "installing OpenMPI (Debian) for tejido.mpi's mpi backend tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null) \
		|| { echo "apt-get install openmpi-bin libopenmpi-dev failed"; exit 1; }; \
	fi

run: $(STAMP)
	$(BIN)/tejido up --nodes 3 --dir .tejido

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 -q

test: lint typecheck contracts pytest

# Long seed sweeps, kept out of `make test`.
soak: $(STAMP)
	$(BIN)/tejido sim register --seeds 1..5000 --faults all
	$(BIN)/tejido sim raft --seeds 1..5000 --faults all
	$(BIN)/tejido sim raft-lease --seeds 1..1000 --faults all
	$(BIN)/tejido sim recipes --seeds 1..2000 --faults all
	$(BIN)/python -m tejido.store.nemesis soak --rounds 10

bench: $(STAMP)
	$(BIN)/tejido bench sim
	$(BIN)/tejido bench check

# The anchors of `tejido bench kv`: Debian's etcd and ZooKeeper (as root), PySyncObj and kazoo.
.PHONY: bench-deps
bench-deps: $(STAMP)
	@if [ "$$(id -u)" = "0" ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			etcd-server etcd-client zookeeper >/dev/null) \
		|| { echo "apt-get install etcd-server zookeeper failed"; exit 1; }; \
	else \
		echo "not root: install etcd-server and zookeeper with apt-get yourself"; \
	fi
	$(BIN)/python -m pip install -q -e '.[bench-kv]'

clean:
	rm -rf $(VENV) runs .mypy_cache .pytest_cache .ruff_cache
