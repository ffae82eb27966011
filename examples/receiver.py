import hashlib, hmac, json, os, sys  # noqa: E401 — a ten-line webhook receiver, stdlib only
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["GENHOOK_SIGNING_SECRET"].encode()  # the whsec_… string, as given

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, self.headers.get("X-Genhook-Signature", ""))
        event = json.loads(body)
        print("verified" if ok else "BAD SIGNATURE", self.headers["X-Genhook-Event"], event["id"], event["output_url"], flush=True)
        self.send_response(200 if ok else 401); self.end_headers()

HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Hook).serve_forever()
