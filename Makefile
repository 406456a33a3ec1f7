# ESP32 MQTT sensor node: every host-side job is a target here. `make help` lists them.
# Set-up is automatic: the first target that needs the venv, mosquitto or the stubs installs them.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps on one venv: user targets need only requirements-user.txt (installs on a Pi, macOS,
# anything with Python 3.11+); test, sim, lint and typecheck need the developer set
# (requirements.txt, which includes the user file).
STAMP := $(VENV)/.installed
USER_STAMP := $(VENV)/.installed-user
NODECTL := $(PY) tools/nodectl

# Variables users set on the command line (see `make help`).
T ?= tests
PYTEST_ARGS ?=
PORT ?=
FW ?=
CONFIG ?= config.json
SECRETS ?=
FLEET ?=
FLASH_SIZE ?=
DRY_RUN ?=
CHIP ?=
BASE ?=
BROKER ?=
SCENARIO ?=
RESUME ?=
MQTT_USER ?=
TLS ?=
BROKER_HOST ?=
# MQTT_PASSWORD= reaches `nodectl monitor` through the environment, not its command line.
# CONFIG= and SECRETS= given on the command line also replace the sim's made-up config.
SIM_CONFIG := $(if $(filter command line,$(origin CONFIG)),--config "$(CONFIG)")
SIM_SECRETS := $(if $(SECRETS),--secrets "$(SECRETS)")
HEAP ?= 256K
FROZEN ?=

# The device twin: MicroPython's Unix port built 32-bit with float32, like the ESP32 port, from
# the MicroPython source tarball beside the repository (SHARED=). See tools/twin/README.md.
SHARED ?= ../shared
TWIN_TAR := $(SHARED)/micropython/micropython-src.tar.gz
TWIN_TREE := build/twin/src/micropython
TWIN := build/twin/micropython
TWIN_FROZEN := build/twin-frozen/micropython
TWIN_DEPS := $(wildcard tools/twin/*.h tools/twin/*.mk tools/twin/*.py) \
	$(shell find tools/sim/board -name '*.py' 2>/dev/null)
LIB_PY := $(shell find lib -name '*.py' 2>/dev/null) manifest.py

.DEFAULT_GOAL := help
.PHONY: help setup venv mosquitto typings test test-compiled test-heap lint typecheck bench sim \
	twin twin-toolchain test-twin bench-twin \
	build flash deploy provision config-check monitor console package package-check broker \
	check-user-tools clean

DRY := $(if $(DRY_RUN),--dry-run)

help: ## List the targets
	@echo "ESP32 MQTT sensor node - make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: T=<tests path> PYTEST_ARGS=... PORT=/dev/ttyUSB0 FW=<micropython.bin>"
	@echo "  CONFIG=config.json SECRETS=secrets.json FLEET=fleet.json FLASH_SIZE=4MB|8MB|16MB DRY_RUN=1"
	@echo "  BASE=<base topic> BROKER=host:port SCENARIO=<scenario.json> RESUME=1"
	@echo "  MQTT_USER=<user> MQTT_PASSWORD=<password> (monitor)"

setup: venv mosquitto ## Install everything the project needs (done automatically by other targets)

venv: $(STAMP)

# Create .venv once (Debian's python3-venv is installed when missing and we are root).
define make_venv
	@if [ ! -x $(PY) ]; then \
	  python3 -m venv $(VENV) 2>/dev/null || { \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "python3 -m venv is missing: installing Debian's python3-venv"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv $(VENV); \
	    else echo "python3 -m venv failed: run 'sudo apt-get install python3-venv' and try again" >&2; exit 1; fi; }; \
	fi
endef

# Each set is installed only when its file changes; a second run installs nothing. The developer
# set includes the user set, so it satisfies both stamps.
$(STAMP): requirements.txt requirements-user.txt
	$(make_venv)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@ $(USER_STAMP)

$(USER_STAMP): requirements-user.txt
	$(make_venv)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-user.txt
	@touch $@

mosquitto: ## Make sure a mosquitto broker binary exists (apt-get when root)
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "mosquitto is missing: installing Debian's mosquitto"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto openssl >/dev/null; \
	else echo "mosquitto is missing: run 'sudo apt-get install mosquitto' and try again" >&2; exit 1; fi

typings: typings/.installed
typings/.installed: requirements-stubs.txt | $(STAMP)
	rm -rf typings
	$(PY) -m pip install --disable-pip-version-check -q --target typings -r requirements-stubs.txt
	@touch $@

test: $(STAMP) mosquitto ## Run the whole test suite (T=path to narrow it)
	$(PY) -m pytest $(T) $(PYTEST_ARGS)

test-compiled: $(STAMP) mosquitto ## Run the MicroPython tests against lib/ compiled with mpy-cross
	$(PY) -m pytest tests/mp --mp-compiled $(PYTEST_ARGS)

# 64-bit Unix port with a bounded heap: catches unbounded growth. The device's own heap figures
# come from the twin (make bench-twin), not from this.
test-heap: $(STAMP) mosquitto ## MicroPython tests from .mpy with a device-sized heap (HEAP=256K)
	$(PY) -m pytest tests/mp --mp-compiled --mp-heap=$(HEAP) $(PYTEST_ARGS)

twin: $(TWIN) $(if $(FROZEN),$(TWIN_FROZEN)) ## Build the device twin (32-bit, float32) in build/twin/ (FROZEN=1: also with lib/ frozen)

# gcc -m32 needs Debian's gcc-multilib: installed here when root, else the exact command is given.
twin-toolchain:
	@if echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /dev/null 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "gcc -m32 cannot link: installing Debian's gcc-multilib"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib >/dev/null; \
	else echo "gcc -m32 cannot link: run 'sudo apt-get install gcc-multilib' and try again" >&2; exit 1; fi

$(TWIN_TREE)/.unpacked: $(TWIN_TAR)
	@test -f "$(TWIN_TAR)" || { echo "$(TWIN_TAR) is missing: set SHARED= to the folder that holds micropython/micropython-src.tar.gz" >&2; exit 1; }
	rm -rf build/twin/src && mkdir -p build/twin/src
	tar xzf "$(TWIN_TAR)" -C build/twin/src
	@touch $@

# A twin variant: $(1) variant name, $(2) variant folder, $(3) the interpreter to produce.
define twin_build
	$(MAKE) -s -C $(TWIN_TREE)/ports/unix -j$$(nproc) VARIANT=$(1) VARIANT_DIR=$(abspath $(2)) CC="gcc -m32"
	mkdir -p $(dir $(3)) && cp $(TWIN_TREE)/ports/unix/build-$(1)/micropython $(3)
endef

$(TWIN): $(TWIN_TREE)/.unpacked $(TWIN_DEPS) | twin-toolchain
	$(call twin_build,twin,tools/twin,$@)

$(TWIN_FROZEN): $(TWIN_TREE)/.unpacked $(TWIN_DEPS) $(wildcard tools/twin/frozen/*) $(LIB_PY) | twin-toolchain
	$(call twin_build,twin-frozen,tools/twin/frozen,$@)

test-twin: $(STAMP) mosquitto $(TWIN) ## The MicroPython tests on the device twin, lib/ compiled with mpy-cross
	$(PY) -m pytest tests/mp --mp-twin --mp-compiled $(PYTEST_ARGS)

bench-twin: $(STAMP) mosquitto $(TWIN) $(TWIN_FROZEN) ## Heap of the node on the device twin (frozen lib, then .mpy)
	$(PY) bench/bench_twin.py

lint: $(STAMP) ## ruff over everything (MicroPython-aware per-folder rules in pyproject.toml)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP) typings ## basedpyright over firmware/ and lib/ against the ESP32 stubs
	$(VENV)/bin/basedpyright

bench: $(STAMP) mosquitto $(TWIN) $(TWIN_FROZEN) ## Benchmarks and endurance runs (twin heap included): print figures, never pass/fail
	@set -e; for b in bench/bench_*.py; do echo "=== $$b"; $(PY) $$b; done

sim: $(STAMP) mosquitto ## Run the node on the simulated board (BROKER=, SCENARIO=, CONFIG=, SECRETS=)
	$(PY) tools/sim/run.py $(if $(BROKER),--broker "$(BROKER)") $(if $(SCENARIO),--scenario "$(SCENARIO)") \
	  $(SIM_CONFIG) $(SIM_SECRETS)

build: $(USER_STAMP) ## Compile lib/ with mpy-cross into build/device (what deploy copies)
	$(NODECTL) build

flash: $(USER_STAMP) ## Erase and flash MicroPython: make flash PORT=/dev/ttyUSB0 FW=ESP32_GENERIC.bin
	$(NODECTL) flash --port "$(PORT)" --firmware "$(FW)" $(if $(CHIP),--chip $(CHIP)) $(DRY)

deploy: $(USER_STAMP) ## Validate the config, copy changed files, restart: make deploy PORT=... CONFIG=...
	$(NODECTL) deploy --port "$(PORT)" --config "$(CONFIG)" $(if $(SECRETS),--secrets "$(SECRETS)") \
	  $(if $(OTA_SECRET),--ota-secret "$(OTA_SECRET)") $(if $(RESUME),--resume) $(DRY)

provision: $(USER_STAMP) ## Build LittleFS images for a fleet: make provision FLEET=fleet.json [FLASH_SIZE=4MB]
	$(NODECTL) provision --fleet "$(FLEET)" $(if $(FLASH_SIZE),--flash-size $(FLASH_SIZE)) \
	  $(if $(FW),--fw $(FW)) $(if $(CHIP),--chip $(CHIP)) $(if $(PORT),--flash --port $(PORT)) \
	  $(if $(OTA_SECRET),--ota-secret "$(OTA_SECRET)") $(DRY)

config-check: $(USER_STAMP) ## Validate a config.json with path-specific messages: make config-check CONFIG=...
	$(NODECTL) config-check "$(CONFIG)" $(if $(SECRETS),"$(SECRETS)")

monitor: $(USER_STAMP) ## Live table of a node's topics: make monitor BASE=Erdgeschoss/Wohnzimmer BROKER=host:port
	$(NODECTL) monitor --base "$(BASE)" $(if $(BROKER),--broker "$(BROKER)") \
	  $(if $(MQTT_USER),--user "$(MQTT_USER)")

console: $(USER_STAMP) ## Follow a board's serial console: make console PORT=/dev/ttyUSB0
	$(NODECTL) console --port "$(PORT)"

package: $(USER_STAMP) ## Regenerate package.json (mpremote mip install) from lib/
	$(NODECTL) package

package-check: $(USER_STAMP) ## Fail if package.json is out of date with lib/
	$(NODECTL) package --check

broker: $(USER_STAMP) ## Mosquitto configuration for the nodes: make broker FLEET=fleet.json [TLS=1 BROKER_HOST=pi.lan]
	$(NODECTL) broker $(if $(FLEET),--fleet "$(FLEET)") $(if $(TLS),--tls) $(if $(BROKER_HOST),--hostname "$(BROKER_HOST)")

# A fresh venv with only requirements-user.txt runs config-check, build, deploy (to the Unix port
# on a pty), monitor and broker (also part of `make test`).
check-user-tools: $(STAMP) mosquitto ## Prove the user tools run with only requirements-user.txt
	$(PY) -m pytest tests/host/test_tools_user_venv.py $(PYTEST_ARGS)

clean: ## Remove build output and caches (keeps the venv)
	rm -rf build .pytest_cache .ruff_cache .sim
	find . -name __pycache__ -prune -exec rm -rf {} +
