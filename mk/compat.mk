# The ansible-core matrix (make compat): for every ansible-core that meta/runtime.yml claims, a
# controller environment build/venv-core-X.Y (made once, kept), then its unit tests, ansible-test
# sanity and a converge of one systemd container with a re-run that must change nothing.
# make compat COMPAT_VERSIONS="2.16 2.21" COMPAT_STEPS=converge runs a part of it.
COMPAT_VERSIONS ?= 2.16 2.17 2.18 2.19 2.20 2.21
COMPAT_STEPS ?= unit sanity converge

.PHONY: compat compat-setup

compat: collection-link
	PYTHON=$(PYTHON) COMPAT_STEPS="$(COMPAT_STEPS)" tests/env/compat.sh run $(COMPAT_VERSIONS)

# Only the controller environments (build/venv-core-X.Y).
compat-setup:
	PYTHON=$(PYTHON) tests/env/compat.sh setup $(COMPAT_VERSIONS)
