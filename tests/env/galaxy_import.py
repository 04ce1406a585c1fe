"""Run galaxy-importer on a collection tarball as Galaxy does on upload, and fail on what it reports.

    python3 tests/env/galaxy_import.py build/galaxy/stigmer-runtime-0.1.0.tar.gz

galaxy-importer exits 0 even when ansible-doc cannot read a module's documentation or ansible-lint
finds violations: it only logs them as ERROR and WARNING lines. Galaxy shows those to every
visitor, so each one fails here, except the warnings listed in ALLOWED.
The importer's own ansible-test run is switched off by tests/galaxy/galaxy-importer.cfg: `make
sanity` runs ansible-test.
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

TOP = pathlib.Path(__file__).resolve().parents[2]
CONFIG = TOP / 'tests' / 'galaxy' / 'galaxy-importer.cfg'
SUCCESS = 'Importer processing completed successfully'
ALLOWED = (
    # Galaxy notes that ignore files exist; ours are empty (ansible-test sanity passes without any).
    re.compile(r'WARNING: Ignore files skip ansible-test sanity tests, found ignore-[0-9.]+\.txt with 0 statement\(s\)$'),
)


def problems(log, returncode=0):
    """What in the importer's log (and exit code) would fail an upload or show on Galaxy."""
    found = [line for line in log.splitlines()
             if line.startswith(('ERROR', 'WARNING', 'CRITICAL')) and not any(p.match(line) for p in ALLOWED)]
    if returncode != 0:
        found.append('galaxy-importer exited %d' % returncode)
    elif SUCCESS not in log:
        found.append('galaxy-importer did not report "%s"' % SUCCESS)
    return found


def importer_environment(venv):
    """The importer finds ansible-doc and ansible-lint on PATH; nothing of the checkout may leak in."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('ANSIBLE_', 'GALAXY_IMPORTER_')) and key != 'PYTHONPATH'}
    env['PATH'] = '%s%s%s' % (venv / 'bin', os.pathsep, env.get('PATH', ''))
    env['GALAXY_IMPORTER_CONFIG'] = str(CONFIG)
    return env


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    tarball = pathlib.Path(argv[0]).resolve()
    venv = pathlib.Path(os.environ.get('GALAXY_VENV', TOP / 'build' / 'venv-galaxy'))
    # It writes importer_result.json into its working directory: keep that out of the checkout.
    with tempfile.TemporaryDirectory() as work:
        result = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'galaxy_importer.main', str(tarball)],
                                cwd=work, env=importer_environment(venv), check=False,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    print(result.stdout, end='')
    found = problems(result.stdout, result.returncode)
    for line in found:
        print('galaxy-importer problem: %s' % line, file=sys.stderr)
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
