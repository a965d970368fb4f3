// Verifies webhookd deliveries with the official Standard Webhooks library.
//
//   npm ci
//   WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.js
//
// Answers 204 to a valid request and 401 to any other, and appends one JSON
// line per request to $RECEIVED_LOG (stdout when unset).
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const secret = process.env.WEBHOOK_SECRET;
if (!secret) throw new Error("WEBHOOK_SECRET is not set");
// A generated `whsec_...` secret is passed as the string (the library decodes
// its base64); a secret you chose yourself is used raw.
const hook = secret.startsWith("whsec_")
  ? new Webhook(secret)
  : new Webhook(secret, { format: "raw" });

function record(line) {
  const text = JSON.stringify(line) + "\n";
  if (process.env.RECEIVED_LOG) fs.appendFileSync(process.env.RECEIVED_LOG, text);
  else process.stdout.write(text);
}

http
  .createServer((request, response) => {
    // The raw bytes as sent: a re-serialised JSON object would not match.
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      let line;
      try {
        // Checks the signature and that webhook-timestamp is within 5 minutes
        // of now; returns the parsed JSON body.
        const event = hook.verify(body, request.headers);
        line = { valid: true, event_id: event.id };
      } catch (error) {
        line = { valid: false, error: error.message };
      }
      line.webhook_id = request.headers["webhook-id"] ?? "";
      record(line);
      // Acting on the event goes here, once per webhook-id (deliveries can repeat).
      response.writeHead(line.valid ? 204 : 401).end();
    });
  })
  .listen(Number(process.env.PORT ?? 8000), "127.0.0.1");
