"""A recording proxy for the conformance run: forwards every request to UPSTREAM unchanged and
appends what it forwarded (method, path, body) to LOG as one JSON line, so the script can check
that evalgate's records hold exactly the prompts the server received.

    python3 proxy.py PORT UPSTREAM_HOST UPSTREAM_PORT LOG
"""
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream_host, upstream_port, log_path = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4])
log = open(log_path, "a", encoding="utf-8")


class Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = {"method": self.command, "path": self.path}
        try:
            entry["body"] = json.loads(body) if body else None
        except ValueError:
            entry["body_text"] = body.decode("utf-8", "replace")
        log.write(json.dumps(entry) + "\n")
        log.flush()
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        conn = http.client.HTTPConnection(upstream_host, upstream_port, timeout=300)
        conn.request(self.command, self.path, body=body or None, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = forward
    do_POST = forward

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Forward).serve_forever()
