#!/usr/bin/env bash
# Install what `make galaxy-check` and `make docs` need on a Debian 12 machine:
# - galaxy-importer, and antsibull-docs/-changelog with Sphinx, each in its own virtualenv under
#   build/ (they pin their own ansible-core and ansible-lint, which must not replace the system
#   ones that run the other tests);
# - Debian's chromium, for the screenshots of the documentation site.
# Safe to run again, and quick when nothing changed: a virtualenv is rebuilt only when its
# requirements file or the Python it was made with changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-$(cd "$here/../.." && pwd)/build}
python=${PYTHON:-python3}

need_apt=()
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed' || need_apt+=(chromium)
"$python" -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv() {
  local dir=$build/$1 requirements=$here/$2 want
  want=$({ "$python" -VV; cat "$requirements"; } | sha256sum | cut -d' ' -f1)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "Installing $2 into $dir"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$dir/.requirements.sha256"
}
venv venv-galaxy requirements-galaxy.txt
venv venv-docs requirements-docs.txt
