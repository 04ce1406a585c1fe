# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Atomic file replacement: readers see the old content or the new, never half of it.

Standard library only: this runs on managed hosts.
"""

import os
import tempfile

# Every temp file is named ``.<basename>.tmp-XXXXXXXX``; install.py relies on
# the marker to recognise (and remove) what a crashed run left behind.
TMP_MARK = '.tmp-'


def atomic_write(path, data, mode=0o644, uid=None, gid=None, chown=os.chown, make_dirs=False):
    """Replace path with data (bytes, or str written as UTF-8) using rename(2).

    The temp file lives in path's directory so the rename stays on one
    filesystem, and it is synced, given its mode and (when uid or gid is set)
    its owner before the rename: the file never shows up short or with the
    wrong attributes. On any failure the temp file is removed and path is
    left as it was. chown is injectable so tests need no root.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    directory = os.path.dirname(path) or '.'
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + TMP_MARK, dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None or gid is not None:
            chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
