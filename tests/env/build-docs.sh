#!/usr/bin/env bash
# Build the documentation site to static HTML from the repository alone (no network):
# antsibull-docs renders the collection, its modules and the role's argument specs to RST,
# the Markdown guides in docs/*.md join them as they are, and Sphinx fails on any warning.
#
#   tests/env/build-docs.sh OUT_DIR      -> OUT_DIR/html/index.html
#
# Needs tests/env/galaxy-setup.sh (the docs virtualenv) and the collection reachable as
# ansible_collections/stigmer/runtime on ANSIBLE_COLLECTIONS_PATH (make collection-link).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:?usage: build-docs.sh OUT_DIR}" && cd "$1" && pwd)
venv=${DOCS_VENV:-$top/build/venv-docs}
export PATH="$venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$top/build/collections}
export ANSIBLE_NOCOLOR=1

src=$out/src
rm -rf "$src" "$out/html" "$out/doctrees"
# antsibull-docs wants its output directory writable by its owner only.
mkdir -m 0755 "$src"

antsibull-docs --config-file "$top/docs/site/antsibull-docs.cfg" collection \
    --use-current --fail-on-error --cleanup everything --dest-dir "$src" stigmer.runtime

mkdir "$src/guides"
cp "$top"/docs/*.md "$src/guides/"
cp "$top/docs/site/index.rst" "$src/index.rst"

# intersphinx inventory (format 2: four header lines, then zlib-compressed entries).
export STIGMER_DOCS_ANSIBLE_INVENTORY=$out/ansible_devel.inv
python3 - "$top/docs/site/ansible-objects.txt" "$STIGMER_DOCS_ANSIBLE_INVENTORY" <<'PY'
import sys
import zlib

entries = []
with open(sys.argv[1]) as source:
    for line in source:
        if line.strip() and not line.startswith('#'):
            label, uri, title = line.split(None, 2)
            entries.append('%s std:label -1 %s %s\n' % (label, uri, title.strip()))
header = '# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n' \
         '# The remainder of this file is compressed using zlib.\n'
with open(sys.argv[2], 'wb') as inventory:
    inventory.write(header.encode() + zlib.compress(''.join(entries).encode()))
PY

sphinx-build -q -W --keep-going -b html -c "$top/docs/site" -d "$out/doctrees" "$src" "$out/html"
echo "Documentation site: $out/html/index.html"
