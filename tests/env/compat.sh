#!/usr/bin/env bash
# The ansible-core matrix: every ansible-core the collection claims (meta/runtime.yml), one
# controller environment each, and per version the unit tests, ansible-test sanity and a converge
# of one real systemd host (site.yml, then a re-run that must change nothing).
#
# Usage: compat.sh [setup|run] [X.Y ...]
#   setup  create or refresh the controller environments only: build/venv-core-X.Y
#   run    (the default) setup, then the steps of every version, a summary line per version and a
#          closing "N passed, M failed" line; exits non-zero when a version failed
# Environment:
#   COMPAT_VERSIONS  versions when none are given (default: 2.16 2.17 2.18 2.19 2.20 2.21)
#   COMPAT_STEPS     steps to run (default: "unit sanity converge")
#   COMPAT_UNIT_ARGS what the unit step gives pytest (default: tests/unit, the whole suite)
#   COMPAT_SANITY_TARGETS what the sanity step checks (default: the shipped code, see below)
#   COMPAT_REFRESH=1 upgrade each environment to the newest patch release on the index
#   PYTHON           the main environment's interpreter (default python3): it carries the ansible
#                    bundle whose containers.podman the converge connects with
#
# Each environment is a venv of the newest Python the version supports among 3.11 (ansible-core
# 2.16 to 2.19) and 3.12 (2.20 and later, which need 3.12+), found on PATH, under pyenv or in
# /usr/bin: nothing here names this machine's paths. Logs: build/compat/<X.Y>-<step>.log, and the
# output of both playbook runs of the converge in build/compat/<X.Y>-site-{1,2}.txt.
# The main environment's ansible-core gets only the converge here: make test runs its unit tests and
# sanity on the whole tree. The converges run one after another in the background while the unit
# tests and sanity of the other versions take the CPU.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
python=${PYTHON:-python3}
default_versions="2.16 2.17 2.18 2.19 2.20 2.21"
steps=${COMPAT_STEPS:-unit sanity converge}
# What every environment holds besides ansible-core: tests/unit imports only pytest, PyYAML (an
# ansible-core requirement) and the standard library; the converge test runs with pytest too.
extra_requirements="pytest"
# What ansible-test sanity checks on the extra versions: what the collection ships to its users. The
# main environment's `make sanity` checks the whole tree, tests included; the tests themselves run
# on every version in the unit step.
sanity_targets=${COMPAT_SANITY_TARGETS:-plugins/ roles/ playbooks/ meta/ changelogs/}

cmd=run
case "${1:-}" in
  setup|run) cmd=$1; shift ;;
  -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$0"; exit 0 ;;
esac
versions=${*:-${COMPAT_VERSIONS:-$default_versions}}

log() { printf '%s\n' "$*" >&2; }

# The Python minor version an ansible-core X.Y runs its controller on here.
python_for() {
  case "$1" in
    2.1[6-9]) echo 3.11 ;;
    2.2[0-9]) echo 3.12 ;;
    *) log "compat: no controller Python known for ansible-core $1"; return 1 ;;
  esac
}

# An interpreter of Python $1 (X.Y) that can create a venv, or nothing.
find_python() {
  local want=$1 candidate root prefix
  local -a candidates=()
  if [ "$($python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
    candidates+=("$(command -v "$python")")
  fi
  if command -v pyenv >/dev/null 2>&1; then
    prefix=$(pyenv prefix "$want" 2>/dev/null | head -n1) && [ -n "$prefix" ] && candidates+=("$prefix/bin/python3")
    root=$(pyenv root 2>/dev/null)
    if [ -n "$root" ]; then
      # The newest patch release first.
      while IFS= read -r candidate; do candidates+=("$candidate"); done < <(
        printf '%s\n' "$root/versions/$want".*/bin/python3 | sort -rV)
    fi
  fi
  candidate=$(command -v "python$want" 2>/dev/null) && candidates+=("$candidate")
  candidates+=("/usr/bin/python$want" "/usr/local/bin/python$want")
  for candidate in "${candidates[@]}"; do
    [ -x "$candidate" ] || continue
    if "$candidate" -c "import sys, ensurepip, venv; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" \
        >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

venv_dir() { echo "$build/venv-core-$1"; }

# ansible-core's version in the environment of $1, or nothing.
core_version() {
  "$(venv_dir "$1")/bin/python" -c 'from ansible.release import __version__; print(__version__)' 2>/dev/null
}

# Create build/venv-core-X.Y unless it exists with ansible-core X.Y.* and what the tests need.
setup_venv() {
  local core=$1 pyver venv base stamp have
  venv=$(venv_dir "$core")
  pyver=$(python_for "$core") || return 1
  stamp="ansible-core==$core.* $extra_requirements (Python $pyver)"
  have=$(core_version "$core")
  if [ -z "${COMPAT_REFRESH:-}" ] && [ "${have%.*}" = "$core" ] && [ -f "$venv/.compat-stamp" ] &&
      [ "$(cat "$venv/.compat-stamp")" = "$stamp" ] && "$venv/bin/python" -c 'import pytest' 2>/dev/null; then
    log "compat: $venv has ansible-core $have"
    return 0
  fi
  if [ ! -x "$venv/bin/python" ] ||
      [ "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$pyver" ]; then
    base=$(find_python "$pyver") || { log "compat: no Python $pyver found (PATH, pyenv, /usr/bin) for ansible-core $core"; return 1; }
    log "compat: creating $venv with $base"
    rm -rf "$venv"
    "$base" -m venv "$venv" || return 1
  fi
  log "compat: installing ansible-core==$core.* $extra_requirements into $venv"
  # pip's notes about this machine's absent local index folders are noise here.
  # shellcheck disable=SC2086  # a list of requirements
  "$venv/bin/python" -m pip install -q --upgrade "ansible-core==$core.*" $extra_requirements 2>&1 |
    grep -v "^WARNING: Location '.*' is ignored"
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  have=$(core_version "$core")
  [ "${have%.*}" = "$core" ] || { log "compat: $venv has ansible-core '$have', not $core"; return 1; }
  echo "$stamp" > "$venv/.compat-stamp"
  log "compat: $venv has ansible-core $have"
}

# The ansible_collections folder of the main environment's ansible bundle (containers.podman).
bundle_collections() {
  local location
  location=$("$python" -m pip show ansible 2>/dev/null | sed -n 's/^Location: //p')
  if [ -z "$location" ] || [ ! -d "$location/ansible_collections/containers/podman" ]; then
    log "compat: the ansible bundle (containers.podman) is not installed for $python: run make deps"
    return 1
  fi
  echo "$location/ansible_collections"
}

# ------------------------------------------------------------------------------------- steps
# Each step runs in the checkout with the version's environment; output goes to its log.
step_unit() {  # core venv
  # shellcheck disable=SC2086  # a list of pytest arguments
  PYTHONPATH=$build/collections "$2/bin/python" -m pytest -q -p no:cacheprovider ${COMPAT_UNIT_ARGS:-tests/unit}
}

step_sanity() {
  # shellcheck disable=SC2086  # a list of targets
  PATH=$2/bin:$PATH PYTHON=$2/bin/python ANSIBLE_TEST=$2/bin/ansible-test \
    SANITY_DIR=$build/compat/sanity-$1 "$top/tests/env/sanity.sh" $sanity_targets
}

step_converge() {
  rm -f "$build/compat/$1-site-"*.txt
  PATH=$2/bin:$PATH STIGMER_COMPAT_CORE=$1 STIGMER_COMPAT_LOG_DIR=$build/compat \
    ANSIBLE_COLLECTIONS_PATH=$build/collections:$bundle \
    PYTHONPATH=$build/collections "$2/bin/python" -m pytest -q -p no:cacheprovider -rs \
    tests/integration/test_ansible_core_matrix.py
}

# ------------------------------------------------------------------------------------- main
status=0
if [ "$cmd" = setup ]; then
  for core in $versions; do setup_venv "$core" || status=1; done
  exit $status
fi

[ -e "$build/collections/ansible_collections/stigmer/runtime" ] || {
  log "compat: $build/collections does not expose the checkout: run make collection-link"; exit 2; }
case " $steps " in *" converge "*) bundle=$(bundle_collections) || exit 2 ;; esac
mkdir -p "$build/compat"
rm -f "$build/compat/"*.result
cd "$top" || exit 2
# The main environment's ansible-core runs the whole suite (make unit, make sanity, make integration):
# here it needs only the converge.
main_core=$("$python" -c 'from ansible.release import __version__; print(__version__.rsplit(".", 1)[0])' 2>/dev/null)

# Run one step; its result ("pass 12s" or "FAIL 12s") goes to build/compat/<X.Y>-<step>.result.
run_step() {  # core venv step label
  local core=$1 venv=$2 step=$3 label=$4 started=$SECONDS steplog=$build/compat/$1-$3.log
  if "step_$step" "$core" "$venv" > "$steplog" 2>&1; then
    echo "pass $((SECONDS - started))s" > "$build/compat/$core-$step.result"
    log "=== $label: $step pass in $((SECONDS - started))s ($steplog)"
  else
    echo "FAIL $((SECONDS - started))s" > "$build/compat/$core-$step.result"
    # What failed (ansible-test's ERROR lines, pytest's FAILED ones), else the end of the log.
    if grep -qE '^(ERROR|FAILED|FATAL)' "$steplog"; then
      log "=== $label: $step FAILED in $((SECONDS - started))s ($steplog):"
      grep -E '^(ERROR|FAILED|FATAL)' "$steplog" | head -n 60 >&2
    else
      log "=== $label: $step FAILED in $((SECONDS - started))s; the end of $steplog:"
      tail -n 40 "$steplog" >&2
    fi
  fi
}

declare -A labels=()
ready=()
for core in $versions; do
  started=$SECONDS
  if ! setup_venv "$core" > "$build/compat/$core-setup.log" 2>&1; then
    cat "$build/compat/$core-setup.log" >&2
    continue
  fi
  venv=$(venv_dir "$core")
  labels[$core]="ansible-core $(core_version "$core") (Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'))"
  log "=== ${labels[$core]}: setup $((SECONDS - started))s"
  ready+=("$core")
done

# The converges wait on containers more than on the CPU: they run one after another beside the
# unit tests and sanity, which take the CPU.
converges=
case " $steps " in *" converge "*)
  ( for core in "${ready[@]}"; do run_step "$core" "$(venv_dir "$core")" converge "${labels[$core]}"; done ) &
  converges=$! ;;
esac
for core in "${ready[@]}"; do
  for step in $steps; do
    [ "$step" = converge ] && continue
    if [ "$core" = "$main_core" ]; then
      echo "main suite" > "$build/compat/$core-$step.result"
      continue
    fi
    run_step "$core" "$(venv_dir "$core")" "$step" "${labels[$core]}"
  done
done
[ -n "$converges" ] && wait "$converges"

passed=0
failed=0
echo
for core in $versions; do
  if [ -z "${labels[$core]:-}" ]; then
    echo "ansible-core $core: FAIL (no environment: $build/compat/$core-setup.log)"
    failed=$((failed + 1))
    continue
  fi
  result=pass
  parts=()
  for step in $steps; do
    outcome=$(cat "$build/compat/$core-$step.result" 2>/dev/null || echo "FAIL (no result)")
    case $outcome in FAIL*) result=FAIL ;; esac
    note=""
    if [ "$step" = converge ] && [ "${outcome%% *}" = pass ]; then
      # What ansible-core warned about is worth seeing before it becomes an error.
      warnings=$(cat "$build/compat/$core-site-"*.txt 2>/dev/null | grep -cE '^\[(DEPRECATION )?WARNING\]')
      [ "$warnings" -gt 0 ] && note=", $warnings warnings in $build/compat/$core-site-*.txt"
    fi
    parts+=("$step $outcome$note")
  done
  joined=$(printf '%s, ' "${parts[@]}")
  echo "${labels[$core]}: $result (${joined%, })"
  if [ $result = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
