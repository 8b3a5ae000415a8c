"""Notification receivers for .ci/deploy-check: one that takes every message, one that never
answers in time.

    python deploy/ci/receiver.py PORT [--hang-s SECONDS]

on 127.0.0.1:PORT (the containers share the host's network):
- POST /ok answers 204 at once: the CI's `ci_hook` channel, counted `sent` by graphnap;
- POST /hang answers 503 only after SECONDS (longer than the channel's timeout): the
  `ci_hang` channel, whose every attempt times out, so graphnap counts its messages
  `failed` after their retries; while it waits, the channel's outbox fills;
- GET /_received: what arrived, as JSON `{"ok": N, "hang": N, "bodies_ok": N}` (bodies_ok:
  /ok messages that were JSON CloudEvents), for the check to compare with graphnap's counts.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_counts = {"ok": 0, "hang": 0, "bodies_ok": 0}
_lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    hang_s = 30.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/ok":
            with _lock:
                _counts["ok"] += 1
                _counts["bodies_ok"] += _is_cloud_event(body)
            self.send_response(204)
            self.end_headers()
        elif self.path == "/hang":
            with _lock:
                _counts["hang"] += 1
            time.sleep(self.hang_s)
            try:
                self.send_response(503)
                self.end_headers()
            except OSError:  # graphnap gave up on it long ago
                pass
        else:
            self.send_response(404)
            self.end_headers()

    def do_GET(self) -> None:
        if self.path != "/_received":
            self.send_response(404)
            self.end_headers()
            return
        with _lock:
            body = json.dumps(_counts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the check prints the counts


def _is_cloud_event(body: bytes) -> bool:
    try:
        event = json.loads(body)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("specversion") == "1.0" and "type" in event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--hang-s", type=float, default=30.0)
    args = parser.parse_args()
    Receiver.hang_s = args.hang_s
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
