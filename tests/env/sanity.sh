#!/usr/bin/env bash
# ansible-test sanity from a copy of the checkout laid out as ansible_collections/stigmer/runtime.
# Offline machines cannot fetch pip's bootstrap script, so a local stand-in that installs
# pip with ensurepip goes where ansible-test looks first (its cache).
# Environment (tests/env/compat.sh sets them per ansible-core):
#   PYTHON       the interpreter ansible-test runs and tests with (default python3)
#   ANSIBLE_TEST ansible-test (default: the one next to PYTHON, else the one on PATH)
#   SANITY_DIR   where the copy goes (default build/sanity); it is recreated
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
bindir=$(dirname "$(command -v "$python")")
if [ -n "${ANSIBLE_TEST:-}" ]; then
  ansible_test=$ANSIBLE_TEST
elif [ -x "$bindir/ansible-test" ]; then
  ansible_test=$bindir/ansible-test
else
  ansible_test=ansible-test
fi
sanity_dir=${SANITY_DIR:-$top/build/sanity}
pyver=$($python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

pip_version=$($python - "$pyver" <<'PY'
import sys
from ansible_test._internal.host_configs import NativePythonConfig
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(NativePythonConfig(version=sys.argv[1], path=sys.executable))['pip'])
PY
)
stub=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$stub" ]; then
  mkdir -p "$(dirname "$stub")"
  cat > "$stub" <<'PY'
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
fi

work="$sanity_dir/ansible_collections/stigmer/runtime"
rm -rf "$sanity_dir"
mkdir -p "$work"
# Tracked and untracked files as they are now: one deleted but not yet committed is left out.
(cd "$top" && git ls-files -co --exclude-standard -z | rsync -a --from0 --ignore-missing-args --files-from=- ./ "$work/")
cd "$work"
git init -q && git add -A
"$ansible_test" --version
"$ansible_test" sanity --requirements --python "$pyver" --color no "$@"
