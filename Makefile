# Two commands for a fresh machine that has only Python (>= 3.10):
#   make demo   create .venv, install QMK, run the main job on the examples
#   make test   create/update .venv with the test extras, lint (ruff, mypy), run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What `make demo` installs beside QMK's dependencies (which include the compiled
# statevector kernels and progress bars): the HTTP API, and Qiskit for the README's snippet.
DEMO_EXTRAS := http,qiskit

.PHONY: demo test lint docs bench fuzz clean chromium bloqade assist-server node-client

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "QMK needs Python >= 3.10, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(DEMO_EXTRAS)]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@ $(VENV)/.installed

# The main job: verify every example program, run each on the simulated machine (QVM,
# OpenQASM and QIR sources alike), then start a kernel and use it as two tenants, then
# over HTTP (REST, live events, metrics; it prints where the web console is).
demo: $(VENV)/.installed
	$(BIN)/qmk validate examples/*.qvm.json examples/*.qvm.asm examples/*.qasm examples/*.ll
	@for f in examples/*.qvm.json examples/*.qasm examples/*.ll; do \
		echo; $(BIN)/qmk run "$$f" --shots 1000 --seed 1 || exit 1; done
	@echo; $(BIN)/python examples/service_demo.py
	@echo; $(BIN)/python examples/http_demo.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The console's browser test drives Debian's chromium (never a downloaded browser): installed
# here when missing and root; without it that one test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium is not installed: the console's browser test will skip"; }

# Bloqade pins numpy<=2.2.6 and pydantic<2.11, below QMK's test extras: it gets an
# environment of its own, where the comparisons with Bloqade's simulators run
# (qmk.devices.neutral_atom.bloqade_peer). When it cannot install, the environment is
# removed and those tests skip, saying why.
BLOQADE_VENV := .venv-bloqade

$(BLOQADE_VENV)/.installed: pyproject.toml Makefile
	@{ [ -x $(BLOQADE_VENV)/bin/python ] || $(PYTHON) -m venv $(BLOQADE_VENV); } \
		&& $(BLOQADE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
			-e '.[bloqade]' && touch $@ \
		|| { rm -rf $(BLOQADE_VENV); \
			echo "Bloqade does not install here: the comparisons with Bloqade will skip"; }

bloqade: $(BLOQADE_VENV)/.installed

# The Node.js client's test (tests/grpc/test_node_client.py) needs its two packages,
# @grpc/grpc-js and @grpc/proto-loader, at the versions clients/node/package-lock.json pins:
# installed here with npm (from the registry, or npm's cache); without node and npm that
# one test skips and says why.
NODE_CLIENT := clients/node

$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund --loglevel=error && touch $@ \
		|| echo "npm ci failed in $(NODE_CLIENT): the Node.js client's test will skip"; \
	else echo "npm is not installed: the Node.js client's test will skip"; fi

node-client: $(NODE_CLIENT)/node_modules/.installed

# The assistant's loop tests run a real llama-cpp-python server, which pip builds from
# source (minutes, once): installed here; where it cannot build, those tests skip, saying why.
$(VENV)/.installed-assist: pyproject.toml | $(VENV)/.installed-test
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[assist-test]' \
		&& touch $@ \
		|| echo "llama-cpp-python does not build here: the assistant's loop tests will skip"

assist-server: $(VENV)/.installed-assist

# The suite runs on TEST_WORKERS processes (pytest-xdist; CI's machine has two cores), each
# test sent to whichever worker is free and a busy worker's queue shared with an idle one
# (--dist worksteal), so no test may rely on which tests ran before it in its process: a
# fixture shared by a module is made once per worker that runs any of its tests.
# TEST_WORKERS=0 runs the suite in pytest's own process.
TEST_WORKERS ?= 2

test: lint chromium bloqade assist-server node-client
	$(BIN)/python -m qmk.qvm.schema --check
	$(BIN)/python -m qmk.commands.schema --check
	$(BIN)/python -m qmk.docgen --check
	$(BIN)/python -m qmk.abi.codegen --check
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# Regenerate the generated files: the shipped JSON Schemas (QVM graphs; kernel configs,
# workflow files and neutral-atom jobs: qmk schema), the generated tables of every
# page in docs/ (qvm.md, qec.md, qsyscall.md, errors.md), and the modules rendered from the
# qSyscall method table (qmk/abi/protocol.py, qmk/abi/calls.py).
docs: $(VENV)/.installed-test
	$(BIN)/python -m qmk.qvm.schema --write
	$(BIN)/python -m qmk.commands.schema --write
	$(BIN)/python -m qmk.docgen --write
	$(BIN)/python -m qmk.abi.codegen --write

bench: $(VENV)/.installed-test bloqade
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_execute.py
	$(BIN)/python bench/bench_noisy.py
	$(BIN)/python bench/bench_engines.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_attacks.py
	$(BIN)/python bench/bench_qec.py
	$(BIN)/python bench/bench_estimate.py
	$(BIN)/python bench/bench_neutral_atom.py
	$(BIN)/python bench/bench_scaleout.py
	$(BIN)/python bench/bench_frontends.py
	$(BIN)/python bench/bench_statevector.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_mps.py
	$(BIN)/python bench/bench_noisy_dense.py
	$(BIN)/python bench/bench_analog.py
	$(BIN)/python bench/bench_ft.py

# The long fuzz run: every fuzz test of tests/fuzz with FUZZ_EXAMPLES examples and random
# seeds (make test runs them with a few, seeds fixed), then, where atheris installs (the
# fuzz extra; Linux wheels), each target coverage-guided for FUZZ_SECONDS. A crash is a
# failing example (hypothesis) or a file in .fuzz/ (atheris): make it a regression test.
FUZZ_EXAMPLES ?= 5000
FUZZ_SECONDS  ?= 120
FUZZ_TARGETS  := jsonrpc qvm-json qvm-asm qasm qir cli-validate

fuzz: $(VENV)/.installed-test
	-@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[fuzz]' \
		|| echo "make fuzz: atheris does not install on this Python; hypothesis only"
	QMK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider tests/fuzz
	@if $(BIN)/python -c 'import atheris' 2>/dev/null; then \
		for target in $(FUZZ_TARGETS); do \
			echo "make fuzz: atheris on $$target for $(FUZZ_SECONDS) s"; \
			$(BIN)/python tests/fuzz/atheris_fuzz.py $$target -max_total_time=$(FUZZ_SECONDS) \
				-print_final_stats=1 || exit 1; \
		done; \
	else echo "make fuzz: no atheris; the hypothesis run above is the long run"; fi

clean:
	rm -rf $(VENV) $(BLOQADE_VENV) .pytest_cache .ruff_cache .hypothesis .fuzz bench/results \
		$(NODE_CLIENT)/node_modules

# ---- The container image, the Kubernetes manifests and the alert rules (docs/deploy.md).
# make image builds localhost/qmk:latest with podman, on BASE_IMAGE: by default a base
# made here with debootstrap (deploy/image/base.sh; no registry needed); where one can be
# pulled, BASE_IMAGE=docker.io/library/python:3.12-slim. As root, podman, runc,
# debootstrap and promtool (Debian's prometheus) are installed when missing, like chromium.
# runc, and ulimits within this machine's hard limits: crun fails on cgroup v1 hosts.
BASE_IMAGE   ?= localhost/qmk-base:bookworm
IMAGE        ?= localhost/qmk:latest
PORT         ?= 8080
PODMAN_FLAGS ?= --runtime runc
ULIMITS      ?= --ulimit nofile=20000:20000 --ulimit nproc=4096:4096

.PHONY: deploy-tools image image-run image-stop deploy-manifests deploy-check

deploy-tools:
	@missing=""; for tool in podman:podman runc:runc debootstrap:debootstrap promtool:prometheus; do \
		command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool#*:}"; done; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
		|| echo "not installed:$$missing: the image and alert-rule tests will skip"; }

image: deploy-tools
	@case "$(BASE_IMAGE)" in localhost/qmk-base:*) deploy/image/base.sh "$(BASE_IMAGE)";; esac
	BASE_IMAGE="$(BASE_IMAGE)" PODMAN_FLAGS="$(PODMAN_FLAGS)" BUILD_FLAGS="$(ULIMITS)" \
		deploy/image/build.sh "$(IMAGE)"

# Serve REST on 127.0.0.1:PORT from the image, with examples/kernel.toml, detached; the
# data directory is the volume qmk-data-PORT (kept by image-stop: remove it by hand).
# Confined as the Helm chart runs it: read-only root, no capabilities, no new privileges.
CONFINE ?= --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges
image-run:
	podman $(PODMAN_FLAGS) run -d --replace --name qmk-$(PORT) $(ULIMITS) $(CONFINE) \
		-p 127.0.0.1:$(PORT):8080 -v "$(CURDIR)/examples/kernel.toml:/etc/qmk/kernel.toml:ro,Z" \
		-v qmk-data-$(PORT):/var/lib/qmk $(IMAGE)
	@echo "QMK: http://127.0.0.1:$(PORT)/ (make image-stop PORT=$(PORT) stops it)"

image-stop:
	-podman $(PODMAN_FLAGS) stop --time 20 qmk-$(PORT)
	-podman $(PODMAN_FLAGS) rm qmk-$(PORT)

# deploy/k8s/: the Helm chart deploy/helm/qmk rendered (make test checks it is current;
# make docs writes it), with the chart's copy of the alert rules.
deploy-manifests: $(VENV)/.installed-test
	$(BIN)/python -m qmk.docgen.k8s --write

deploy-check: $(VENV)/.installed-test
	$(BIN)/python -m qmk.docgen.k8s --check

test: deploy-tools deploy-check
docs: deploy-manifests
