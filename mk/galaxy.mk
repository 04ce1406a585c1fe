# Publishing gates: what Galaxy checks on upload, the changelog and the documentation site.
# Included from the Makefile (after BUILD, PYTHON, COLLECTION_ROOT and collection-link are defined):
#   make galaxy-check  build the tarball; galaxy-importer (as Galaxy runs it, minus its ansible-test run,
#                      which `make sanity` covers), antsibull-changelog lint, antsibull-docs
#                      lint-collection-docs --plugin-docs, and tests/galaxy (tarball contents, changelog)
#   make docs          the documentation site in build/docs/html (Sphinx warnings fail), then headless
#                      Chromium screenshots of the module index and the role page (build/docs/screenshots)
#   make changelog     antsibull-changelog release for the version in galaxy.yml (CHANGELOG.md and .rst)
#   make role-readme   regenerate the variables table of every role's README.md from its argument specs
GALAXY_VENV := $(BUILD)/venv-galaxy
DOCS_VENV := $(BUILD)/venv-docs
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
GALAXY_TARBALL := $(BUILD)/galaxy/stigmer-runtime-$(COLLECTION_VERSION).tar.gz

.PHONY: galaxy-deps galaxy-build galaxy-check docs changelog role-readme

galaxy-deps:
	tests/env/galaxy-setup.sh

galaxy-build: galaxy-deps
	@rm -rf $(BUILD)/galaxy && mkdir -p $(BUILD)/galaxy
	$(GALAXY_VENV)/bin/ansible-galaxy collection build --output-path $(BUILD)/galaxy .

galaxy-check: galaxy-build collection-link
	GALAXY_VENV=$(GALAXY_VENV) $(PYTHON) tests/env/galaxy_import.py $(GALAXY_TARBALL)
	$(DOCS_VENV)/bin/antsibull-changelog lint
	PATH=$(DOCS_VENV)/bin:$$PATH antsibull-docs lint-collection-docs --plugin-docs .
	STIGMER_GALAXY_TARBALL=$(GALAXY_TARBALL) DOCS_VENV=$(DOCS_VENV) \
	    $(PYTHON) -m pytest -q tests/galaxy --ignore=tests/galaxy/test_docs_render.py

docs: galaxy-deps collection-link
	DOCS_VENV=$(DOCS_VENV) tests/env/build-docs.sh $(BUILD)/docs
	STIGMER_DOCS_HTML=$(BUILD)/docs/html STIGMER_DOCS_SCREENSHOTS=$(BUILD)/docs/screenshots \
	    $(PYTHON) -m pytest -q tests/galaxy/test_docs_render.py

changelog: galaxy-deps collection-link
	$(DOCS_VENV)/bin/antsibull-changelog release --version $(COLLECTION_VERSION)

role-readme:
	$(PYTHON) tests/env/role_readme.py
