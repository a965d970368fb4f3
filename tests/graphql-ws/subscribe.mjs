// Runs one subscription with the graphql-ws reference client and prints one
// JSON line per happening, for the Rust test reading stdout:
//   {"kind":"connected"}          connection_ack received
//   {"kind":"next","payload":{}}  an execution result
//   {"kind":"error","errors":[]}  the subscription failed
//   {"kind":"complete"}           the server completed it
//   {"kind":"closed","code":N,"reason":"..."}  the socket closed
// Configured by GQL_URL, GQL_TOKEN (optional) and GQL_QUERY.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const token = process.env.GQL_TOKEN;
const client = createClient({
  url: process.env.GQL_URL,
  webSocketImpl: WebSocket,
  connectionParams: token === undefined ? {} : { token },
  lazy: false,
  retryAttempts: 0,
  on: {
    connected: () => print({ kind: "connected" }),
    closed: (event) => {
      print({ kind: "closed", code: event.code, reason: event.reason });
      process.exit(0);
    },
  },
  onNonLazyError: () => {},
});

client.subscribe(
  { query: process.env.GQL_QUERY },
  {
    next: (payload) => print({ kind: "next", payload }),
    error: (errors) => print({ kind: "error", errors: Array.isArray(errors) ? errors : [String(errors)] }),
    complete: () => print({ kind: "complete" }),
  },
);
