# Two entry points (see README.md):
#   make demo  - provision a local fleet of systemd containers from the local release server
#   make test  - every gate CI runs: lint, sanity, unit, Galaxy import, docs site, integration
#                and Molecule scenarios
SHELL := /bin/bash
PYTHON ?= python3
BUILD := $(CURDIR)/build
COLLECTION_ROOT := $(BUILD)/collections/ansible_collections/stigmer/runtime
RELEASES := $(BUILD)/releases
SERVER_PORT ?= 18480
ASSET_PORT ?= 18481
SCENARIOS ?= default host_mode upgrade uninstall arm64
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export PYTHONPATH := $(BUILD)/collections
export ANSIBLE_CONFIG := $(CURDIR)/tests/ansible.cfg
export STIGMER_TEST_RELEASES := $(RELEASES)
export STIGMER_TEST_SERVER_PORT := $(SERVER_PORT)
export STIGMER_TEST_ASSET_PORT := $(ASSET_PORT)

# Galaxy: importer, changelog and docs lints, tarball contents, the documentation site.
include mk/galaxy.mk
# The fleet benchmark (make bench-fleet): cold, warm and floor runs on N containers.
include mk/bench.mk
# The ansible-core matrix (make compat): unit, sanity and a converge per ansible-core 2.16 to 2.21.
include mk/compat.mk

.PHONY: demo demo-down test deps images collection-link releases server-start server-stop bench \
        lint sanity unit integration molecule

# The stand-in releases are rebuilt from the working tree under the same tags. The demo's
# controller cache rightly trusts what it verified before, so it starts afresh when they change.
demo: deps images collection-link releases server-start
	@cmp -s $(RELEASES)/releases.json $(BUILD)/cache/releases.json || \
	    { rm -rf $(BUILD)/cache && mkdir -p $(BUILD)/cache && cp $(RELEASES)/releases.json $(BUILD)/cache/; }
	tests/env/fleet.sh up $(BUILD)/demo/inventory.yml
	ansible-playbook -i $(BUILD)/demo/inventory.yml playbooks/site.yml -e @tests/demo-vars.yml
	ansible-playbook -i $(BUILD)/demo/inventory.yml playbooks/verify.yml -e @tests/demo-vars.yml \
	    -e stigmer_report_dir=$(BUILD)/demo/reports
	@echo "Fleet report: $(BUILD)/demo/reports/fleet-report.html (and .md, .json). Remove the fleet: make demo-down"

demo-down: server-stop
	tests/env/fleet.sh down

test: deps images lint sanity unit galaxy-check docs compat integration molecule bench-fleet

deps:
	tests/env/setup-host.sh

images:
	tests/env/build-images.sh amd64 arm64

# ansible-test and the unit tests import the collection as
# ansible_collections.stigmer.runtime: expose the checkout under that path.
collection-link:
	@mkdir -p $(dir $(COLLECTION_ROOT))
	@[ -L $(COLLECTION_ROOT) ] || ln -sfn $(CURDIR) $(COLLECTION_ROOT)

releases:
	$(PYTHON) tests/fixtures/build_releases.py $(RELEASES)

# Always a fresh start: a server left running (by an earlier demo) holds the older catalogue.
server-start: releases
	@$(PYTHON) tests/fixtures/server_ctl.py stop --state-dir $(BUILD)/server >/dev/null 2>&1 || true
	$(PYTHON) tests/fixtures/server_ctl.py start --root $(RELEASES) --port $(SERVER_PORT) \
	    --asset-port $(ASSET_PORT) --state-dir $(BUILD)/server

server-stop:
	-$(PYTHON) tests/fixtures/server_ctl.py stop --state-dir $(BUILD)/server

lint: collection-link
	ansible-lint --profile production --offline

sanity: collection-link
	tests/env/sanity.sh

unit: collection-link
	$(PYTHON) -m pytest -q tests/unit

# Two workers, one test file each at a time (a file's hosts and release server are its own); the
# longest files first, so the last one to start is short. Everything else follows in file order.
INTEGRATION_FIRST = test_host_safety test_playbooks test_fleet_operations test_temporal_pollers
integration: collection-link releases
	$(PYTHON) -m pytest -q -p no:benchmark -n 2 --dist loadfile --durations=15 \
	  $(foreach f,$(INTEGRATION_FIRST),tests/integration/$(f).py) tests/integration

molecule: collection-link server-start
	set -e; trap '$(MAKE) -s server-stop' EXIT; \
	for s in $(SCENARIOS); do \
	  if [ $$s = arm64 ] && ! podman image exists localhost/stigmer-test-debian:bookworm-arm64; then \
	    echo "=== molecule scenario arm64 SKIPPED: this machine cannot emulate arm64 (no image)"; continue; fi; \
	  echo "=== molecule scenario $$s"; molecule test -s $$s; done

# Figures, not pass/fail: download+verify throughput and peak memory of one large artifact.
bench: collection-link
	$(PYTHON) tests/bench/bench_artifact.py
