# Entry points: `make demo` provisions a local fleet from the local release
# server; `make test` runs every gate CI runs. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
BUILD := $(CURDIR)/build
COLLECTION_ROOT := $(BUILD)/collections/ansible_collections/stigmer/runtime
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export PYTHONPATH := $(BUILD)/collections

.PHONY: collection-link unit

# ansible-test and the unit tests import the collection as
# ansible_collections.stigmer.runtime: expose the checkout under that path.
collection-link:
	@mkdir -p $(dir $(COLLECTION_ROOT))
	@[ -L $(COLLECTION_ROOT) ] || ln -sfn $(CURDIR) $(COLLECTION_ROOT)

unit: collection-link
	$(PYTHON) -m pytest -q tests/unit
