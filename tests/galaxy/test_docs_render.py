"""The documentation site renders: headless Chromium loads the module index and the role page.

Run by `make docs` after tests/env/build-docs.sh. STIGMER_DOCS_HTML is the built site (default
build/docs/html); the screenshots are kept in STIGMER_DOCS_SCREENSHOTS (default build/docs/screenshots)
for people to look at.
"""
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest
import yaml

TOP = pathlib.Path(__file__).resolve().parents[2]
SITE = pathlib.Path(os.environ.get('STIGMER_DOCS_HTML', TOP / 'build' / 'docs' / 'html'))
SHOTS = pathlib.Path(os.environ.get('STIGMER_DOCS_SCREENSHOTS', TOP / 'build' / 'docs' / 'screenshots'))
WIDTH, HEIGHT = 1280, 1000
PAGES = {
    'module-index': 'collections/index_module.html',
    'role': 'collections/stigmer/runtime/stigmer_role.html',
}


def chromium(*args):
    binary = shutil.which('chromium') or shutil.which('chromium-browser')
    if not binary:
        pytest.fail('chromium is not installed: run tests/env/galaxy-setup.sh')
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars',
             '--user-data-dir=' + profile, '--window-size=%d,%d' % (WIDTH, HEIGHT)] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors='replace')[-2000:]
    return result.stdout.decode()


def screenshot(url, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / ('%s.png' % name)
    if path.exists():
        path.unlink()
    chromium('--screenshot=%s' % path, url)
    return decode_png(path.read_bytes())


def _paeth(left, up, up_left):
    estimate = left + up - up_left
    distance_left, distance_up, distance_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    if distance_left <= distance_up and distance_left <= distance_up_left:
        return left
    return up if distance_up <= distance_up_left else up_left


def decode_png(data):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    offset, idat = 8, b''
    while offset < len(data):
        length, kind = struct.unpack('>I4s', data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b'IHDR':
            width, height, depth, color, interlace = struct.unpack('>IIBB2xB', body)
            assert depth == 8 and color in (2, 6) and interlace == 0, 'unsupported PNG layout'
        elif kind == b'IDAT':
            idat += body
        offset += 12 + length
    channels = 4 if color == 6 else 3
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                up_left = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, previous[i], up_left)) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


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
    dom = chromium('--dump-dom', (site / PAGES['module-index']).as_uri())
    modules = sorted(path.stem for path in (TOP / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__')
    assert modules
    missing = [name for name in modules if 'stigmer.runtime.%s' % name not in dom]
    assert missing == []


def test_role_page_documents_every_option(site):
    dom = chromium('--dump-dom', (site / PAGES['role']).as_uri())
    with open(TOP / 'roles' / 'stigmer' / 'meta' / 'argument_specs.yml') as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    assert 'stigmer.runtime.stigmer role' in dom
    missing = [name for name in options if name not in dom]
    assert missing == []
