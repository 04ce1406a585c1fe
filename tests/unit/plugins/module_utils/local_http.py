# -*- coding: utf-8 -*-
# Copyright: (c) 2026, stigmer.runtime contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A scriptable HTTP server on 127.0.0.1 for tests that need real sockets."""

import threading

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _serve(self):
        answer = self.server.owner.answer(self)
        if answer is None:  # the route wrote its own answer
            return
        status, headers, body = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    do_GET = _serve
    do_HEAD = _serve
    do_POST = _serve


class LocalServer(object):
    """Serves on an ephemeral port from a daemon thread until close().

    Subclasses implement answer(handler) -> (status, headers, body), or None
    after writing the answer themselves through handler.
    """

    def __init__(self):
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.base = 'http://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()

    def answer(self, handler):
        raise NotImplementedError

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
