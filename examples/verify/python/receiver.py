"""Verifies webhookd deliveries with the official Standard Webhooks library.

    pip install --require-hashes -r requirements.txt
    WEBHOOK_SECRET=whsec_... PORT=8000 python receiver.py

Answers 204 to a valid request and 401 to any other, and appends one JSON line
per request to $RECEIVED_LOG (stdout when unset).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]
# A generated `whsec_...` secret is passed as the string (the library decodes
# its base64); a secret you chose yourself is used raw, so pass its bytes.
HOOK = Webhook(SECRET) if SECRET.startswith("whsec_") else Webhook(SECRET.encode())


def record(line):
    text = json.dumps(line) + "\n"
    if path := os.environ.get("RECEIVED_LOG"):
        with open(path, "a") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        # The raw bytes as sent: a re-serialised JSON object would not match.
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            # Checks the signature and that webhook-timestamp is within
            # 5 minutes of now; returns the parsed JSON body.
            event = HOOK.verify(body, dict(self.headers))
            line = {"valid": True, "event_id": event.get("id")}
        except (WebhookVerificationError, ValueError) as error:
            # ValueError: a malformed header (bad base64, no comma).
            line = {"valid": False, "error": str(error)}
        line["webhook_id"] = self.headers.get("webhook-id", "")
        record(line)
        # Acting on the event goes here, once per webhook-id (deliveries can repeat).
        self.send_response(204 if line["valid"] else 401)
        self.end_headers()

    def log_message(self, *args):
        pass  # one JSON line per request is enough


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
