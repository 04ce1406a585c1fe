"""Benchmark: download + verify of one large artifact over loopback HTTP.

Prints figures; asserts nothing about time. Run: make bench
Measures a cold download (fetch, stream-hash, atomic rename) and a warm run (re-hash the
cached file, no request), with the peak RSS of this process, which stays flat because the
artifact is streamed in chunks rather than read into memory.
"""
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ansible_collections.stigmer.runtime.plugins.module_utils._artifact import ensure_artifact

SIZE_MIB = int(os.environ.get('BENCH_SIZE_MIB', '64'))
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '3'))
NAME = 'agent-runner-v9.9.9-linux-amd64'


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def serve(payload, checksum):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = payload if self.path.endswith(NAME) else checksum
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    payload = os.urandom(1024 * 1024) * SIZE_MIB
    digest = hashlib.sha256(payload).hexdigest()
    server = serve(payload, ('%s  %s\n' % (digest, NAME)).encode())
    base = 'http://127.0.0.1:%d/' % server.server_address[1]
    rss_before = peak_rss_mib()
    print('artifact: %d MiB, %d rounds, peak RSS before: %.0f MiB (the payload itself is held by the server)'
          % (SIZE_MIB, ROUNDS, rss_before))
    for round_no in range(1, ROUNDS + 1):
        dest = tempfile.mkdtemp(prefix='stigmer-bench-')
        try:
            start = time.perf_counter()
            cold = ensure_artifact(NAME, base + NAME, dest, checksum_url=base + NAME + '.sha256')
            cold_s = time.perf_counter() - start
            start = time.perf_counter()
            warm = ensure_artifact(NAME, base + NAME, dest, checksum_url=base + NAME + '.sha256')
            warm_s = time.perf_counter() - start
        finally:
            shutil.rmtree(dest)
        assert cold['downloaded'] and not warm['downloaded'] and cold['sha256'] == digest
        print('round %d: cold download+verify %.2f s (%.0f MiB/s), warm cache check %.2f s (%.0f MiB/s), '
              'peak RSS %.0f MiB' % (round_no, cold_s, SIZE_MIB / cold_s, warm_s, SIZE_MIB / warm_s, peak_rss_mib()))
    print('peak RSS growth over the runs: %.1f MiB for a %d MiB artifact' % (peak_rss_mib() - rss_before, SIZE_MIB))
    server.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
