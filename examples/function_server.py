#!/usr/bin/env python3
"""A local stand-in for an Azure Function (or any HTTP function) that a sink connector
calls: it prints each batch it gets and answers 200. Checks the function key when
FUNCTION_KEY is set.

    python3 examples/function_server.py [port]     # default 7071, as Azure's local host
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("FUNCTION_KEY")


class Function(BaseHTTPRequestHandler):
    def do_POST(self):
        if KEY and self.headers.get("x-functions-key") != KEY:
            self.send_response(401)
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            records = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for record in records:
            print(
                f"{record['topic']}-{record['partition']}@{record['offset']}: "
                f"{json.dumps(record['value'])}",
                flush=True,
            )
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"received": len(records)}).encode())

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7071
    print(f"function listening on http://127.0.0.1:{port}/api/trades", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Function).serve_forever()
