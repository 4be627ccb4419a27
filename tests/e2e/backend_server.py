#!/usr/bin/env python3
"""A backend of the end-to-end load-balancer test: a real HTTP server (the
standard library's ThreadingHTTPServer, real Linux TCP) that answers every GET
with its name ("b1\\n") and logs each connection it accepts.

The log has one line per accepted connection, "MONOTONIC PEER_ADDRESS PEER_PORT",
written and flushed at accept(). CLOCK_MONOTONIC is system-wide on Linux, so the
test compares these times with its own and with the load generator's.

GET /?delay_ms=N waits N ms before answering (connections that are still open
when a backend is drained). HTTP/1.0: the server closes each connection after
its answer, so finished connections end in TIME_WAIT on the backend side.

Prints "listening" once it accepts connections.

usage: backend_server.py --name NAME --bind ADDRESS --port PORT --log FILE
"""

import argparse
import http.server
import socketserver
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        delay_ms = int(query.get("delay_ms", ["0"])[0])
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        body = (self.server.name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # one line per connection goes to the accept log instead


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: bursts of SYNs are not dropped

    def __init__(self, address, name, log):
        self.name, self.log = name, log
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind asks the resolver for the host's FQDN, which
        # waits for DNS timeouts in a namespace with no way out.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, peer = super().get_request()
        self.log.write(f"{time.monotonic():.6f} {peer[0]} {peer[1]}\n")
        self.log.flush()
        return sock, peer


def main():
    ap = argparse.ArgumentParser(description="HTTP backend of the e2e load-balancer test")
    ap.add_argument("--name", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    with open(args.log, "a") as log:
        server = Server((args.bind, args.port), args.name, log)
        print("listening", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
