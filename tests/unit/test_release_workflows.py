"""The GitHub workflows run what CI runs: the make targets of .ci/run, in the same order.

They cannot run on the development machines (no GitHub there), so this is what keeps them from
drifting: a target added to .ci/run and not to the workflows fails here.
"""
import pathlib
import re

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
WORKFLOWS = TOP / '.github' / 'workflows'
MAKE = re.compile(r'^\s*make\s+([^#;&|\n]*)', re.MULTILINE)
# After the targets of .ci/run, the release workflow writes the changelog and builds the tarball.
RELEASE_ONLY = ['changelog', 'galaxy-build']


def make_targets(script):
    """Targets of every `make` command line in a shell script, in order (variable assignments left out)."""
    return [word for args in MAKE.findall(script) for word in args.split() if '=' not in word and not word.startswith('-')]


def load(name):
    with open(WORKFLOWS / name) as handle:
        return yaml.safe_load(handle)


def steps(workflow):
    return [step for job in workflow['jobs'].values() for step in job.get('steps', [])]


def workflow_targets(workflow):
    return make_targets('\n'.join(step.get('run', '') for step in steps(workflow)))


def defined_targets():
    """Targets of the Makefile and of the files it includes."""
    text = (TOP / 'Makefile').read_text()
    for included in re.findall(r'^-?include\s+(.+)$', text, re.MULTILINE):
        for name in included.split():
            text += '\n' + (TOP / name).read_text()
    return set(re.findall(r'^([a-z][a-z0-9-]*):', text, re.MULTILINE))


CI_TARGETS = make_targets((TOP / '.ci' / 'run').read_text())


def test_ci_runs_make_targets():
    assert CI_TARGETS and 'test' in CI_TARGETS


@pytest.mark.parametrize('script, expected', [
    ('set -e\nmake demo\nmake demo-down\n', ['demo', 'demo-down']),
    ('  make -s lint unit SCENARIOS=default  # comment\necho make\n', ['lint', 'unit']),
    ('make test && echo done', ['test']),
])
def test_make_targets(script, expected):
    assert make_targets(script) == expected


def test_pull_requests_run_the_targets_of_ci():
    workflow = load('test.yml')
    assert 'pull_request' in workflow['on']
    assert workflow_targets(workflow) == CI_TARGETS


def test_release_runs_the_targets_of_ci_then_publishes():
    workflow = load('release.yml')
    assert workflow['on']['push']['tags'] == ['v*']
    assert workflow_targets(workflow) == CI_TARGETS + RELEASE_ONLY
    runs = [step.get('run', '') for step in steps(workflow)]
    publish = [index for index, run in enumerate(runs) if 'ansible-galaxy collection publish' in run]
    last_make = max(index for index, run in enumerate(runs) if make_targets(run))
    assert len(publish) == 1 and publish[0] > last_make


def test_only_the_publish_step_sees_the_galaxy_token():
    workflow = load('release.yml')
    holders = [step['name'] for step in steps(workflow) if 'secrets.' in yaml.safe_dump(step)]
    assert holders == ['Publish to Galaxy']


@pytest.mark.parametrize('name', ['test.yml', 'release.yml'])
def test_workflows_run_on_the_machine_ci_is_written_for(name):
    # .ci/run: "a fresh Debian 12 machine, root".
    jobs = [job for job in load(name)['jobs'].values() if any(make_targets(s.get('run', '')) for s in job['steps'])]
    assert jobs and all(job['container']['image'] == 'debian:12' for job in jobs)


@pytest.mark.parametrize('name', ['test.yml', 'release.yml'])
def test_every_target_a_workflow_names_exists(name):
    assert set(workflow_targets(load(name))) - defined_targets() == set()
