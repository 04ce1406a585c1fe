"""The documentation site renders: headless Chromium loads the module index and the role page.

Run by `make docs` after tests/env/build-docs.sh. STIGMER_DOCS_HTML is the built site (default
build/docs/html); the screenshots are kept in STIGMER_DOCS_SCREENSHOTS (default build/docs/screenshots)
for people to look at.
"""
import os
import pathlib
import sys

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / 'tests' / 'fixtures'))

import screenshots  # noqa: E402
SITE = pathlib.Path(os.environ.get('STIGMER_DOCS_HTML', TOP / 'build' / 'docs' / 'html'))
SHOTS = pathlib.Path(os.environ.get('STIGMER_DOCS_SCREENSHOTS', TOP / 'build' / 'docs' / 'screenshots'))
WIDTH, HEIGHT = 1280, 1000
PAGES = {
    'module-index': 'collections/index_module.html',
    'role': 'collections/stigmer/runtime/stigmer_role.html',
}


def screenshot(url, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    return screenshots.screenshot(url, SHOTS / ('%s.png' % name), WIDTH, HEIGHT)


def share(rows, predicate):
    pixels = [pixel for row in rows for pixel in row]
    return sum(1 for pixel in pixels if predicate(pixel)) / len(pixels)


def not_white(pixel):
    return min(pixel) < 235


def dark(pixel):
    return max(pixel) < 90


@pytest.fixture(scope='module')
def site():
    if not (SITE / 'index.html').is_file():
        pytest.fail('no documentation site at %s: run make docs' % SITE)
    return SITE


def test_a_blank_page_counts_as_blank(tmp_path):
    # The check below must be able to fail: an empty page has (almost) no ink.
    blank = tmp_path / 'blank.html'
    blank.write_text('<html><body style="background:#fff"></body></html>')
    width, height, rows = screenshot(blank.as_uri(), 'blank')
    assert (width, height) == (WIDTH, HEIGHT)
    assert share(rows, not_white) < 0.001


@pytest.mark.parametrize('name', sorted(PAGES))
def test_page_renders_with_its_theme(site, name):
    rows = screenshot((site / PAGES[name]).as_uri(), name)[2]
    # Measured: about 0.3 to 0.5 of the pixels are not white, and the theme's black top bar fills
    # the first 40 rows; without the stylesheet a page is 0.02 ink and has no top bar.
    assert share(rows, not_white) > 0.1
    assert share(rows[:40], dark) > 0.8


def test_module_index_lists_every_module(site):
    dom = screenshots.chromium('--dump-dom', (site / PAGES['module-index']).as_uri())
    modules = sorted(path.stem for path in (TOP / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__')
    assert modules
    missing = [name for name in modules if 'stigmer.runtime.%s' % name not in dom]
    assert missing == []


def test_role_page_documents_every_option(site):
    dom = screenshots.chromium('--dump-dom', (site / PAGES['role']).as_uri())
    with open(TOP / 'roles' / 'stigmer' / 'meta' / 'argument_specs.yml') as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    assert 'stigmer.runtime.stigmer role' in dom
    missing = [name for name in options if name not in dom]
    assert missing == []
