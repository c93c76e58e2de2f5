"""Prints every webhook driftd delivers (compose demo only; does not verify signatures)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event = self.headers.get("X-Driftd-Event")
        delivery = self.headers.get("X-Driftd-Delivery")
        try:
            summary = json.loads(body)
            findings = [f"{f['feature']}/{f['method']}={f['statistic']}"
                        for f in summary.get("findings", []) if f.get("drifted")]
        except (ValueError, KeyError, TypeError):
            findings = ["<unparsable body>"]
        print(f"{event} delivery={delivery} {' '.join(findings)}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Receiver).serve_forever()
