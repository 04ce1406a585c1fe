#!/usr/bin/env bash
# ansible-test sanity from a copy of the checkout laid out as ansible_collections/stigmer/runtime.
# Offline machines cannot fetch pip's bootstrap script, so a local stand-in that installs
# pip with ensurepip goes where ansible-test looks first (its cache).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
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

work="$top/build/sanity/ansible_collections/stigmer/runtime"
rm -rf "$top/build/sanity"
mkdir -p "$work"
(cd "$top" && git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$work/")
cd "$work"
git init -q && git add -A
ansible-test sanity --requirements --python "$pyver" --color no "$@"
