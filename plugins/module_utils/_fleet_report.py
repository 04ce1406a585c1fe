# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the fleet report (module stigmer_fleet_report, run on the controller).

``classify`` gives every host one state from what playbooks/verify.yml collected, the
renderers turn the result into a text table, Markdown, JSON and one self-contained HTML page,
and ``write_reports`` writes the files atomically.

Standard library and ansible.module_utils only.
"""

import html
import json
import os
import re
import stat
import unicodedata
from collections import Counter

from ansible_collections.stigmer.runtime.plugins.module_utils._host import atomic_write
from ansible_collections.stigmer.runtime.plugins.module_utils._version import VersionError, parse_semver, tag_to_version

# In precedence order: a host gets the first state that applies.
STATES = ('unreachable', 'failed', 'not-installed', 'unhealthy', 'drift', 'healthy')

# The state cell's background, and nothing else on the page: a screenshot test finds the rows by
# these exact colours. White bold text on each has a contrast ratio of at least 4.5.
STATE_COLORS = {
    'healthy': '#1a7f37',
    'unhealthy': '#c62828',
    'drift': '#9a5b00',
    'not-installed': '#1565c0',
    'failed': '#6a1b9a',
    'unreachable': '#455a64',
}

SERVICE_STATUSES = ('active', 'inactive', 'failed', 'stale', 'unknown')
FORMATS = ('json', 'markdown', 'html')
FILE_NAMES = {'json': 'fleet-report.json', 'markdown': 'fleet-report.md', 'html': 'fleet-report.html'}
FILE_MODE = 0o644
DIR_MODE = 0o755
# A failed task's message can hold a whole traceback; the report keeps its start on one line.
MAX_REASON = 500
NO_VALUE = '-'

_WHITESPACE_RE = re.compile(r'\s+')
# Terminal escape sequences (CSI and OSC, such as colours and hyperlinks, in their 7- and 8-bit
# forms, then any other ESC and the character after it): host-provided text must not repaint a
# terminal. Removed whole, so no parameter of one is left behind as text.
_ESCAPE_RE = re.compile(r'(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?'
                        r'|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x9c|\x1b\\)?'
                        r'|\x1b[ -/]*[0-~]?')
# Unicode's control (Cc) and format (Cf) characters: C0 and C1 controls, bidirectional overrides,
# zero-width spaces and joiners, byte order marks, invisible tag characters. None is visible, and
# each can reorder a line, hide text or make two host names look the same.
_HIDDEN_CATEGORIES = ('Cc', 'Cf')
# A lone surrogate is how Python keeps a byte that was not UTF-8 (Ansible reads output with
# surrogateescape); it cannot be written as UTF-8, so it shows as the replacement character.
_SURROGATE_RE = re.compile(r'[\ud800-\udfff]')


class ReportWriteError(Exception):
    """A report file could not be written; path names it."""

    def __init__(self, path, error):
        super(ReportWriteError, self).__init__('%s: %s' % (path, error))
        self.path = path
        self.error = error


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------

def printable(text):
    """Text without terminal escape sequences, control and invisible formatting characters; line
    breaks become spaces, bytes that were not UTF-8 the replacement character.

    The one sanitiser of host-provided text: every row is built with it and every renderer applies it.
    """
    text = _SURROGATE_RE.sub('\ufffd', _WHITESPACE_RE.sub(' ', _ESCAPE_RE.sub('', '%s' % (text,))))
    if text.isprintable():
        return text  # the common case, without a look-up per character
    return ''.join(char for char in text if unicodedata.category(char) not in _HIDDEN_CATEGORIES)


def one_line(text, limit=MAX_REASON):
    """Printable text on one line (tables break otherwise), cut at limit characters."""
    text = _WHITESPACE_RE.sub(' ', printable(text)).strip()
    return text if len(text) <= limit else text[:limit - 1] + '\u2026'


def plain_version(value):
    """A version as stigmer_info spells it (no leading v); anything unparsable as given (printable,
    on one line), or None."""
    if value is None or not ('%s' % (value,)).strip():
        return None
    try:
        return tag_to_version('%s' % (value,))
    except VersionError:
        return one_line(value, 100) or None


def tag(version):
    """How a version reads in a sentence: v0.1.0."""
    return version if version.startswith('v') else 'v' + version


def _semver_rank(version):
    # Unparsable versions rank below every real one instead of raising.
    try:
        return (1, parse_semver(version))
    except VersionError:
        return (0,)


def fleet_version(hosts, expected_version=None):
    """expected_version when given, else the most common CLI version of the installed reachable
    hosts, ties broken by the highest semantic version; None when no host has one.

    Raises VersionError when expected_version is not a version.
    """
    if _given(expected_version):
        return tag_to_version('%s' % (expected_version,))
    counts = Counter()
    for entry in hosts:
        if not isinstance(entry, dict) or unreadable_reasons(entry):
            continue  # what it says cannot be believed, its version neither
        info = _dict(entry.get('info'))
        version = plain_version(info.get('cli_version'))
        if not entry.get('unreachable') and info.get('installed') and version:
            counts[version] += 1
    if not counts:
        return None
    return max(counts, key=lambda v: (counts[v], _semver_rank(v), v))


def _dict(value):
    return value if isinstance(value, dict) else {}


# The fields the report reads from a registered stigmer_info or stigmer_health result, and their
# types; None stands for a missing value. A result with another type in one of them was not
# written by those modules (or was mangled on the way): nothing it says can be believed.
INFO_FIELDS = {'installed': bool, 'cli_version': str, 'agent_runner_version': str, 'temporal_version': str,
               'problems': list, 'services': dict, 'skipped': bool, 'failed': bool, 'unreachable': bool}
HEALTH_FIELDS = {'healthy': bool, 'grpc': bool, 'status': str, 'msg': str, 'components': dict, 'polling': list,
                 'skipped': bool, 'failed': bool, 'unreachable': bool}
# The fields the report reads from a host's own entry (verify.yml's summary of the host).
ENTRY_FIELDS = {'host': str, 'platform': str, 'unreachable': str, 'failed': str, 'supervised': bool}
# Lists whose elements are read as text.
_TEXT_LISTS = ('problems', 'polling')
# Mappings whose keys are read as text (component names).
_TEXT_KEYS = ('services', 'components')
_TYPE_NAMES = {bool: 'a boolean', str: 'a string', list: 'a list', dict: 'a mapping'}


def result_errors(result, fields):
    """Why a registered result cannot be read, one phrase per field; [] when it is None (missing,
    which is not a type error) or a mapping whose fields have their types."""
    if result is None:
        return []
    if not isinstance(result, dict):
        return ['it is %s, not a mapping' % type(result).__name__]
    errors = []
    for name in sorted(fields):
        value = result.get(name)
        if value is not None and not isinstance(value, fields[name]):
            errors.append('%s is %s, not %s' % (name, type(value).__name__, _TYPE_NAMES[fields[name]]))
        elif name in _TEXT_LISTS and value:
            errors.extend('%s[%d] is %s, not a string' % (name, index, type(item).__name__)
                          for index, item in enumerate(value) if not isinstance(item, str))
        elif name in _TEXT_KEYS and value:
            errors.extend('%s key %s is %s, not a string' % (name, one_line(key, 40), type(key).__name__)
                          for key in value if not isinstance(key, str))
    return errors


def entry_errors(entry):
    """Why the host's own entry (a mapping) cannot be read: no host name, a field of the wrong type."""
    # Without a name (or with one that prints as nothing), a healthy row could stand for any host.
    missing = [] if one_line(entry.get('host') or '', 200) else ['host is missing or blank']
    return missing + result_errors(entry, ENTRY_FIELDS)


def _readable(result, fields):
    """The result without its fields of a wrong type: what is shown of one that cannot be read."""
    return dict((k, v) for k, v in _dict(result).items() if k not in fields or isinstance(v, fields[k]))


def unreadable_reasons(entry):
    """Why the host's entry and registered results cannot be read, one reason for each; [] when they can."""
    errors = entry_errors(entry)
    reasons = ['the host\'s result could not be read: %s' % ', '.join(errors)] if errors else []
    for name, fields in (('info', INFO_FIELDS), ('health', HEALTH_FIELDS)):
        errors = result_errors(entry.get(name), fields)
        if errors:
            reasons.append('the stigmer_%s result could not be read: %s' % (name, ', '.join(errors)))
    return reasons


def _given(value):
    return value is not None and bool(('%s' % (value,)).strip())


def service_status(entry):
    """stigmer_info's services entry (or stigmer_health's components entry) -> one word."""
    if not isinstance(entry, dict):
        return 'unknown'
    # stigmer_health reports systemd's ActiveState/SubState, such as active/running.
    state = ('%s' % (entry.get('state') or '',)).partition('/')[0].strip().lower()
    active = entry.get('active')
    if active is None:
        active = {'active': True, 'inactive': False, 'failed': False}.get(state)
    if active is True:
        return 'stale' if entry.get('stale') else 'active'
    if state == 'failed':
        return 'failed'
    if active is False:
        return 'inactive'
    return 'unknown'


def health_text(health):
    """What the gRPC probe found, in a few words."""
    if not isinstance(health, dict) or not health:
        return 'not checked'
    if health.get('status'):
        return one_line(health['status'], 60)
    if health.get('grpc') is True:
        return 'answers gRPC (no health service)'
    if health.get('grpc') is False:
        return 'no answer'
    return 'unknown'


def polling_of(health):
    """The components Temporal lists polling (stigmer_health's polling), or None when not known."""
    polling = _dict(health).get('polling')
    return [one_line(name, 100) for name in polling] if isinstance(polling, list) else None


def _services(info, health):
    source = info.get('services')
    if not isinstance(source, dict) or not source:
        source = _dict(_dict(health).get('components'))
    return dict((one_line(name, 100), source[name]) for name in sorted(source, key=str))


def _drift_reasons(info, services, cli, runner, fleet, expected):
    reasons = []
    for name, entry in services.items():
        if service_status(entry) == 'stale':
            reasons.append('%s: installed %s, running an older start: %s'
                           % (name, tag(cli), one_line(entry.get('stale'))))
    if not runner:
        reasons.append('agent-runner version unknown (its record is missing or not trusted)')
    elif runner != cli:
        reasons.append('CLI %s but agent-runner %s' % (tag(cli), tag(runner)))
    if fleet and cli != fleet:
        reasons.append('asked %s, found %s' % (tag(fleet), tag(cli)) if expected
                       else 'CLI %s, fleet runs %s' % (tag(cli), tag(fleet)))
    # A record that could not be believed (Temporal's, say) is not what the role wrote.
    reasons.extend('install record: %s' % one_line(p) for p in info.get('problems') or [])
    return reasons


def _task_outcome(entry, outcome):
    # The registered result of a task that failed or could not reach its host, passed as info or
    # health without the entry's own reason: it holds no answer, only why.
    for name in ('info', 'health'):
        result = entry.get(name)
        if isinstance(result, dict) and result.get(outcome) is True:
            return 'stigmer_%s %s: %s' % (name, outcome, one_line(result.get('msg') or 'no message'))
    return None


def classify_host(entry, fleet=None, expected=False):
    """One row: the host's state, what it runs and why it is not healthy.

    fleet: the version every host should run; expected: whether it was asked for (the reason says so).
    """
    if not isinstance(entry, dict):
        unreadable = ['the host\'s result could not be read: it is %s, not a mapping' % type(entry).__name__]
        entry = {}
    else:
        unreadable = unreadable_reasons(entry)
    # The name as given, whatever its type: the row must say which host it is.
    name = one_line(entry.get('host') or '', 200) or '?'
    info, health = _dict(entry.get('info')), entry.get('health')
    if unreadable:
        # Shown as far as it can be, but with no value of a wrong type.
        entry = _readable(entry, ENTRY_FIELDS)
        info, health = _readable(info, INFO_FIELDS), _readable(health, HEALTH_FIELDS)
    cli = plain_version(info.get('cli_version'))
    runner = plain_version(info.get('agent_runner_version'))
    services = _services(info, health)
    row = {
        'host': name,
        'platform': one_line(entry['platform'], 100) if entry.get('platform') else None,
        'cli_version': cli,
        'agent_runner_version': runner,
        'temporal_version': plain_version(info.get('temporal_version')),
        'services': dict((name, service_status(value)) for name, value in services.items()),
        'polling': polling_of(health),
        'health': health_text(health),
    }
    if entry.get('unreachable'):
        state, reasons = 'unreachable', [one_line(entry['unreachable'])]
    elif _task_outcome(entry, 'unreachable'):
        state, reasons = 'unreachable', [_task_outcome(entry, 'unreachable')]
    elif entry.get('failed'):
        state, reasons = 'failed', [one_line(entry['failed'])]
    elif _task_outcome(entry, 'failed'):
        state, reasons = 'failed', [_task_outcome(entry, 'failed')]
    elif unreadable:
        state, reasons = 'failed', unreadable
    elif entry.get('info') is None:
        state, reasons = 'failed', ['no stigmer_info result']
    elif info.get('skipped'):
        state, reasons = 'failed', ['stigmer_info was skipped']
    elif not info.get('installed') or not cli:
        state = 'not-installed'
        reasons = ['install of %s is incomplete' % tag(cli) if cli else 'not installed']
        reasons.extend(one_line(p) for p in info.get('problems') or [])
    else:
        unhealthy = []
        health = _dict(health)
        if entry.get('supervised') is False:
            pass  # binaries only: no service to be healthy
        elif not health:
            unhealthy.append('no health result')
        elif health.get('skipped'):
            unhealthy.append('the health check was skipped')
        elif health.get('healthy') is False:
            unhealthy.append(one_line(health.get('msg') or 'the health check failed without a reason'))
        elif health.get('healthy') is not True:
            unhealthy.append('the health result has no verdict')
        unhealthy.extend('service %s is %s' % (name, status) for name, status in row['services'].items()
                         if status not in ('active', 'stale'))
        drift = _drift_reasons(info, services, cli, runner, fleet, expected)
        state = 'unhealthy' if unhealthy else 'drift' if drift else 'healthy'
        # An unhealthy host that also drifts says both; the state names the worse.
        reasons = unhealthy + drift
    row['state'] = state
    row['reasons'] = reasons
    return row


def classify(hosts, expected_version=None):
    """{'rows': one row per host in the order given, 'summary': the fleet's verdict}.

    hosts: [{'host', 'platform', 'unreachable', 'failed', 'info', 'health', 'supervised'}]; any value
    but host may be None or partial; supervised false (binaries only) needs no health result. A host
    whose entry, info or health cannot be read (not a mapping, a field of the wrong type, no host name) is failed.
    expected_version: when given, the fleet version, and every host on another CLI version drifts.
    Raises VersionError for an expected_version that is not one.
    """
    hosts = list(hosts or [])
    fleet = fleet_version([h for h in hosts if isinstance(h, dict)], expected_version)
    expected = _given(expected_version)
    rows = [classify_host(h, fleet, expected) for h in hosts]
    counts = dict((state, 0) for state in STATES)
    for row in rows:
        counts[row['state']] += 1
    summary = {
        'fleet_version': fleet,
        'expected_version': fleet if expected else None,
        'counts': counts,
        'total': len(rows),
        # An empty report proves nothing, so it is not ok.
        'ok': bool(rows) and counts['healthy'] == len(rows),
        'problems': ['%s: %s: %s' % (r['host'], r['state'], '; '.join(r['reasons']))
                     for r in rows if r['state'] != 'healthy'],
    }
    return {'rows': rows, 'summary': summary}


# ---------------------------------------------------------------------------
# renderers
# ---------------------------------------------------------------------------

def _cell(value):
    return NO_VALUE if value in (None, '') else '%s' % (value,)


def services_text(services):
    return ' '.join('%s=%s' % (name, status) for name, status in sorted(services.items())) or NO_VALUE


def polling_text(polling):
    """Who Temporal lists polling: names, 'none', or '-' when not known."""
    if polling is None:
        return NO_VALUE
    return ', '.join(polling) or 'none'


def services_brief(services):
    """For the narrow screen table: how many are active, and by name those that are not."""
    if not services:
        return NO_VALUE
    others = ['%s=%s' % (name, status) for name, status in sorted(services.items()) if status != 'active']
    active = len(services) - len(others)
    return ' '.join(others + (['%d active' % active] if active else []))


def verdict(summary):
    """One sentence: the verdict, the version and the counts."""
    counts = ', '.join('%d %s' % (summary['counts'][s], s) for s in STATES if summary['counts'].get(s))
    version = tag(summary['fleet_version']) if summary.get('fleet_version') else 'unknown'
    source = 'expected' if summary.get('expected_version') else 'fleet'
    return '%s: %s version %s, %d host%s%s' % (
        'OK' if summary['ok'] else 'NOT OK', source, version, summary['total'],
        '' if summary['total'] == 1 else 's', ': ' + counts if counts else '')


TABLE_REASON_CHARS = 120
TABLE_COLUMNS = (('HOST', 'host'), ('PLATFORM', 'platform'), ('STATE', 'state'), ('CLI', 'cli_version'),
                 ('AGENT-RUNNER', 'agent_runner_version'), ('TEMPORAL', 'temporal_version'),
                 ('SERVICES', 'services'), ('POLLING', 'polling'), ('REASON', 'reasons'))


def _table_cells(row):
    cells = []
    for _title, key in TABLE_COLUMNS:
        if key == 'services':
            cells.append(services_brief(row['services']))
        elif key == 'polling':
            cells.append(polling_text(row['polling']))
        elif key == 'reasons':
            # The screen gets the gist; the files keep every word.
            cells.append(one_line('; '.join(row['reasons']), TABLE_REASON_CHARS))
        else:
            cells.append(_cell(row[key]))
    return [printable(cell) for cell in cells]


def render_table(report):
    """Fixed-width text lines (for the task output), then the verdict."""
    header = [title for title, _key in TABLE_COLUMNS]
    body = [_table_cells(row) for row in report['rows']]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header) - 1)]
    lines = []
    for line in [header] + body:
        padded = [text.ljust(width) for text, width in zip(line, widths)] + [line[-1]]
        lines.append('  '.join(padded).rstrip())
    lines.append(printable(verdict(report['summary'])))
    return lines


# Only what could end a cell or start markup: the raw file stays readable in a terminal.
_MARKDOWN_SPECIAL_RE = re.compile(r'([\\`*_\[\]|~#])')
# Where a host's text is cut into words: whatever could end a table cell or a code span or start a
# tag, and brackets, so the markup around an address stays text.
_WORD_RE = re.compile(r'[^\s|`<>()\[\]]+')
# A word a Markdown renderer could turn into a link by itself: an address with a scheme, one with
# www., an e-mail address (GitHub's autolinks), or a bare domain name such as evil.example/x
# (linkify in markdown-it, as VS Code's preview has it). Versions (0.1.0) have no letter after a dot.
# Each alternative is fixed-width: a long word costs its length, not its length squared.
_ADDRESS_HINT_RE = re.compile(r'(?i)://|www\.|@|\.[^\W\d_]{2}')


def _markdown_text(text):
    return html.escape(_MARKDOWN_SPECIAL_RE.sub(r'\\\1', text), quote=False)


def markdown_escape(text):
    """Text safe in a Markdown table cell: no column break, no markup, no raw HTML, no link."""
    text = one_line(text, 10000)
    parts, start = [], 0
    for match in _WORD_RE.finditer(text):
        # Punctuation that ends a sentence stays outside, as autolinkers leave it.
        word = match.group(0).rstrip('.,;:!?')
        if _ADDRESS_HINT_RE.search(word):
            # A code span links nothing, and a word holds nothing that would end it.
            parts += [_markdown_text(text[start:match.start()]), '`%s`' % word]
            start = match.start() + len(word)
    return ''.join(parts + [_markdown_text(text[start:])])


def render_markdown(report):
    summary = report['summary']
    lines = ['# Stigmer fleet report', '', '**%s**' % markdown_escape(verdict(summary)), '']
    lines.append('| host | platform | state | CLI | agent-runner | temporal | services | polling | health | reasons |')
    lines.append('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for row in report['rows']:
        cells = [row['host'], _cell(row['platform']), row['state'], _cell(row['cli_version']),
                 _cell(row['agent_runner_version']), _cell(row['temporal_version']),
                 services_text(row['services']), polling_text(row['polling']), row['health'],
                 '; '.join(row['reasons']) or NO_VALUE]
        lines.append('| %s |' % ' | '.join(markdown_escape(c) for c in cells))
    if summary['problems']:
        lines += ['', '## Problems', '']
        lines += ['- %s' % markdown_escape(p) for p in summary['problems']]
    return '\n'.join(lines) + '\n'


def _printable_tree(value):
    # JSON escapes control characters as \u001b, which every reader turns back into them.
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return dict((printable(k), _printable_tree(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_printable_tree(item) for item in value]
    return value


def render_json(report, generated=None):
    document = dict(report['summary'], hosts=report['rows'], generated=generated)
    return json.dumps(_printable_tree(document), indent=2, sort_keys=True, ensure_ascii=False) + '\n'


# Neutral greys and white only: the state colours belong to the state cells alone.
_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;background:#ffffff;color:#1f2328;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{margin:0 0 4px;font-size:24px;font-weight:600}
p.verdict{margin:0 0 16px;font-size:17px;font-weight:600}
ul.counts{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 20px;padding:0;list-style:none}
ul.counts li{padding:4px 12px;border:1px solid #d0d7de;border-radius:14px;background:#f6f8fa;color:#1f2328}
ul.counts li b{font-variant-numeric:tabular-nums}
table{border-collapse:separate;border-spacing:0 6px;width:100%}
th{padding:6px 12px;text-align:left;font-size:13px;color:#59636e;border-bottom:2px solid #d0d7de;white-space:nowrap}
td{padding:8px 12px;vertical-align:middle;background:#f6f8fa;border-top:1px solid #d8dee4;border-bottom:1px solid #d8dee4}
td.name{font-weight:600;white-space:nowrap}
td.version,td.platform{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;white-space:nowrap}
td.services,td.polling{font-size:13px}
td.health{min-width:8em}
td.services span{display:inline-block;margin:1px 6px 1px 0;white-space:nowrap}
td.reasons{min-width:16em;max-width:48em;overflow-wrap:anywhere}
td.reasons ul{margin:0;padding-left:18px}
td.state{min-width:9em;height:36px;padding:8px 16px;border:0;color:#ffffff;font-weight:700;text-align:center;white-space:nowrap}
"""


def _state_css():
    # One rule per state: the only place each colour is written.
    return ''.join('tr.state-%s td.state{background:%s}\n' % (state, STATE_COLORS[state]) for state in STATES)


def _html_text(value):
    return html.escape(printable(value))


def _html_row(row):
    esc = _html_text
    services = ''.join('<span>%s=%s</span>' % (esc(name), esc(status)) for name, status in sorted(row['services'].items()))
    reasons = ''.join('<li>%s</li>' % esc(reason) for reason in row['reasons'])
    return ''.join([
        '<tr class="host state-%s">' % esc(row['state']),
        '<td class="name">%s</td>' % esc(row['host']),
        '<td class="platform">%s</td>' % esc(_cell(row['platform'])),
        '<td class="state">%s</td>' % esc(row['state']),
        '<td class="version">%s</td>' % esc(_cell(row['cli_version'])),
        '<td class="version">%s</td>' % esc(_cell(row['agent_runner_version'])),
        '<td class="version">%s</td>' % esc(_cell(row['temporal_version'])),
        '<td class="services">%s</td>' % (services or NO_VALUE),
        '<td class="polling">%s</td>' % esc(polling_text(row['polling'])),
        '<td class="health">%s</td>' % esc(row['health']),
        '<td class="reasons">%s</td>' % ('<ul>%s</ul>' % reasons if reasons else NO_VALUE),
        '</tr>',
    ])


def render_html(report):
    """One HTML5 page: inline CSS, no script, nothing fetched from anywhere."""
    summary = report['summary']
    esc = _html_text
    version = tag(summary['fleet_version']) if summary.get('fleet_version') else 'unknown'
    title = 'Stigmer fleet report: %s %s' % (version, 'OK' if summary['ok'] else 'NOT OK')
    counts = ''.join('<li>%s <b>%d</b></li>' % (esc(state), summary['counts'].get(state, 0)) for state in STATES)
    head = ['<th>%s</th>' % esc(name) for name in
            ('Host', 'Platform', 'State', 'CLI', 'Agent-runner', 'Temporal', 'Services', 'Polling', 'Health',
             'Reasons')]
    parts = [
        '<!DOCTYPE html>',
        '<html lang="en">',
        '<head>',
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<title>%s</title>' % esc(title),
        '<style>%s%s</style>' % (_CSS, _state_css()),
        '</head>',
        '<body>',
        '<h1>%s</h1>' % esc(title),
        '<p class="verdict">%s</p>' % esc(verdict(summary)),
        '<ul class="counts">%s<li>total <b>%d</b></li></ul>' % (counts, summary['total']),
        '<table>',
        '<thead><tr>%s</tr></thead>' % ''.join(head),
        '<tbody>',
    ]
    parts += [_html_row(row) for row in report['rows']]
    parts += ['</tbody>', '</table>', '</body>', '</html>']
    return '\n'.join(parts) + '\n'


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------

def _read(path):
    """The file's bytes when it is a regular file with the report's mode, else None."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != FILE_MODE:
            return None
        with open(path, 'rb') as handle:
            return handle.read()
    except (OSError, IOError):
        return None


def _json_keeping_generated(report, generated, old):
    # A report whose only difference is its timestamp is the same report: keeping the old file
    # keeps the task unchanged while the fleet is.
    try:
        previous = json.loads(old.decode('utf-8')).get('generated') if old is not None else None
    except (ValueError, AttributeError):
        previous = None
    if previous is not None:
        same = render_json(report, previous).encode('utf-8')
        if same == old:
            return same
    return render_json(report, generated).encode('utf-8')


def render(report, fmt, generated=None, old=None):
    if fmt == 'json':
        return _json_keeping_generated(report, generated, old)
    if fmt == 'markdown':
        return render_markdown(report).encode('utf-8')
    if fmt == 'html':
        return render_html(report).encode('utf-8')
    raise ValueError('unknown report format %r; expected one of %s' % (fmt, ', '.join(FORMATS)))


def write_reports(directory, report, formats=FORMATS, generated=None, check_mode=False):
    """Write fleet-report.{json,md,html} for formats into directory.

    Returns (paths, changed_paths). Each file is replaced atomically with mode 0644; the directory
    is created (0755) when missing. In check mode nothing is written and changed_paths is what
    would change. Raises ReportWriteError naming the path that could not be written.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError('unknown report format %s; expected some of %s' % (', '.join(map(str, unknown)), ', '.join(FORMATS)))
    paths, changed, planned = [], [], []
    for fmt in FORMATS:
        if fmt not in formats:
            continue
        path = os.path.join(directory, FILE_NAMES[fmt])
        old = _read(path)
        data = render(report, fmt, generated, old)
        paths.append(path)
        if data != old:
            changed.append(path)
            planned.append((path, data))
    if check_mode or not planned:
        return paths, changed
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, DIR_MODE, exist_ok=True)
            os.chmod(directory, DIR_MODE)  # makedirs' mode is masked by the umask
        except OSError as exc:
            raise ReportWriteError(directory, exc)
    for path, data in planned:
        try:
            atomic_write(path, data, mode=FILE_MODE)
        except OSError as exc:
            raise ReportWriteError(path, exc)
    return paths, changed
