# Fleet benchmark: figures, not pass/fail (tests/bench/bench_fleet.py says what it prints).
# Included from the Makefile (after PYTHON and collection-link are defined):
#   make bench-fleet  site.yml cold and warm on BENCH_HOSTS systemd containers against a floor play
#                     (gather_facts + one stat): wall time, origin requests and bytes, changed and
#                     module round trips per host; the v0.9.0 agent-runner is padded by BENCH_PAD_MIB MiB
BENCH_HOSTS ?= 5
BENCH_PAD_MIB ?= 20

.PHONY: bench-fleet

bench-fleet: collection-link
	BENCH_HOSTS=$(BENCH_HOSTS) BENCH_PAD_MIB=$(BENCH_PAD_MIB) $(PYTHON) tests/bench/bench_fleet.py
