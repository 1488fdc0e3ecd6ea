#!/usr/bin/env python3
"""bss-sink: a local catch-all for Alertmanager notifications, so nothing leaves the machine.

* SMTP on :1025 (email_configs smarthost bss-sink:1025): accepts any message, no auth, no TLS.
* HTTP on :8025: POST any path (slack_configs api_url http://bss-sink:8025/slack/<channel>)
  stores the body; GET /messages returns what was received (JSON, newest last, at most 500);
  GET /healthz answers "ok".
Standard library only (runs on Debian's python3 and on python:3.11-slim).
"""
import json
import socketserver
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGES = deque(maxlen=500)
LOCK = threading.Lock()


def record(kind, target, body):
    with LOCK:
        MESSAGES.append({"at": time.time(), "kind": kind, "target": target, "body": body[:20000]})
    print(f"[sink] {kind} -> {target} ({len(body)} bytes)", flush=True)


class Http(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self._send(200, "ok\n", "text/plain")
        elif self.path == "/messages":
            with LOCK:
                self._send(200, json.dumps(list(MESSAGES)))
        else:
            self._send(404, "not found\n", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        record("http", self.path, self.rfile.read(n).decode("utf-8", "replace"))
        self._send(200, "ok", "text/plain")

    def log_message(self, *args):
        pass


class Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for Alertmanager: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 bss-sink ESMTP")
        rcpts = []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            cmd = raw.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-bss-sink\r\n250 8BITMIME\r\n")
            elif verb == "HELO":
                self.reply("250 bss-sink")
            elif verb == "MAIL":
                rcpts = []
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(cmd[8:].strip() if len(cmd) > 8 else "")
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    l = self.rfile.readline(65536)
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    lines.append(l.decode("utf-8", "replace"))
                record("smtp", ",".join(rcpts), "".join(lines))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    smtp = SmtpServer(("0.0.0.0", 1025), Smtp)
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    http = ThreadingHTTPServer(("0.0.0.0", 8025), Http)
    print("[sink] smtp :1025, http :8025", flush=True)
    http.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
