#!/usr/bin/env bash
# Broker cluster test: three RabbitMQ nodes on 127.0.0.1 clustered together,
# two webhookd workers (broker.queue_type = quorum, broker.urls listing the
# three nodes in different orders), a receiver verifying every HMAC
# signature, and crm-events publishing RATE events/s with confirms. While
# publishing, the node worker 1 is connected to is killed (kill -9) and
# restarted, then the quorum queue's leader is stopped and restarted. At the
# end every confirmed event must have reached the receiver and have a
# successful attempt in webhook_logs; prints a summary and exits non-zero on
# any loss.
#
# The machine's own RabbitMQ (rabbit@localhost, 5672/25672), its cookie and
# HOME are left alone: these nodes have their own names, ports, data, logs,
# config and plugins files and an Erlang cookie in a temporary HOME given to
# them and to the rabbitmqctl calls that manage them only.
#
# Usage: scripts/cluster-test.sh   (RATE=100 PHASE_SECS=12 KEEP=1 to keep the temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

RATE=${RATE:-100}
PHASE_SECS=${PHASE_SECS:-12}
AMQP_BASE=${AMQP_BASE:-5680}   # nodes listen on AMQP_BASE+1..3
DIST_BASE=${DIST_BASE:-25680}  # Erlang distribution on DIST_BASE+1..3
RMQ_BIN=/usr/lib/rabbitmq/bin
SECRET=cluster-test-secret

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$CARGO_TARGET_DIR" in /*) target=$CARGO_TARGET_DIR ;; *) target=$root/$CARGO_TARGET_DIR ;; esac

scripts/ensure-services.sh >/dev/null
echo "building webhookd and crm-events (debug)..."
cargo build --quiet --locked -p webhookd --bin webhookd -p webhookd-producer --bin crm-events
webhookd=$target/debug/webhookd
crm_events=$target/debug/crm-events

for i in 1 2 3; do
  for port in $((AMQP_BASE + i)) $((DIST_BASE + i)); do
    if ss -ltn "( sport = :$port )" | grep -q LISTEN; then
      echo "port $port is in use; set AMQP_BASE/DIST_BASE to free ones" >&2
      exit 2
    fi
  done
done

tmp=$(mktemp -d /tmp/webhookd-cluster.XXXXXX)
db=webhookd_cluster_$$
database_url=postgres://postgres@127.0.0.1:5432/$db
pids=()
status=1

now() { date +%s.%N; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

node_env() {
  local i=$1
  echo "HOME=$tmp/home" \
    "RABBITMQ_CONF_ENV_FILE=$tmp/rabbitmq-env.conf" \
    "RABBITMQ_NODENAME=whd$i@localhost" \
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
    "RABBITMQ_NODE_PORT=$((AMQP_BASE + i))" \
    "RABBITMQ_DIST_PORT=$((DIST_BASE + i))" \
    "RABBITMQ_MNESIA_BASE=$tmp/mnesia" \
    "RABBITMQ_LOG_BASE=$tmp/log/whd$i" \
    "RABBITMQ_CONFIG_FILE=$tmp/whd$i.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$tmp/advanced.config" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$tmp/enabled_plugins" \
    "RABBITMQ_PID_FILE=$tmp/whd$i.pid" \
    "ERL_EPMD_ADDRESS=127.0.0.1"
}

ctl() { # ctl NODE_INDEX ARGS...: rabbitmqctl against one of our nodes
  local i=$1
  shift
  env $(node_env "$i") "$RMQ_BIN/rabbitmqctl" -n "whd$i@localhost" "$@"
}

diag() {
  local i=$1
  shift
  env $(node_env "$i") "$RMQ_BIN/rabbitmq-diagnostics" -n "whd$i@localhost" "$@"
}

start_node() {
  local i=$1
  mkdir -p "$tmp/log/whd$i"
  env $(node_env "$i") "$RMQ_BIN/rabbitmq-server" >>"$tmp/log/whd$i.out" 2>&1 &
}

wait_node() {
  local i=$1
  for _ in $(seq 1 120); do
    if diag "$i" -q check_running >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "node whd$i did not start; see $tmp/log/whd$i" >&2
  return 1
}

node_pid() { cat "$tmp/whd$1.pid" 2>/dev/null || true; }

cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for i in 1 2 3; do
    ctl "$i" -q stop >/dev/null 2>&1
    pid=$(node_pid "$i")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null; fi
  done
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
    echo "logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the three nodes -------------------------------------------------------
mkdir -p "$tmp/home" "$tmp/mnesia" "$tmp/log"
python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)), end="")' >"$tmp/home/.erlang.cookie"
chmod 400 "$tmp/home/.erlang.cookie"
# Our own env file, so /etc/rabbitmq/rabbitmq-env.conf (the machine node's
# name) is not read.
echo 'ERL_EPMD_ADDRESS=127.0.0.1' >"$tmp/rabbitmq-env.conf"
echo '[].' >"$tmp/enabled_plugins"
echo '[].' >"$tmp/advanced.config"
for i in 1 2 3; do
  cat >"$tmp/whd$i.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$((AMQP_BASE + i))
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
done

log "starting nodes whd1..3@localhost on 127.0.0.1:$((AMQP_BASE + 1))-$((AMQP_BASE + 3))"
for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do wait_node "$i"; done
for i in 2 3; do
  ctl "$i" -q stop_app
  ctl "$i" -q join_cluster whd1@localhost
  ctl "$i" -q start_app
  wait_node "$i"
done
ctl 1 -q cluster_status | grep -A4 -i "running nodes" || true

url() { echo "amqp://guest:guest@127.0.0.1:$((AMQP_BASE + $1))/%2f"; }
exchange=cluster.events
queue=cluster.webhookd
common_env=(
  "WEBHOOKD__DATABASE__URL=$database_url"
  "WEBHOOKD__BROKER__EXCHANGE=$exchange"
  "WEBHOOKD__BROKER__QUEUE=$queue"
  "WEBHOOKD__BROKER__QUEUE_TYPE=quorum"
  "WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS=true"
  "WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS=200"
  "WEBHOOKD__DELIVERY__MAX_BACKOFF_MS=2000"
  "WEBHOOKD__SCHEDULER__POLL_INTERVAL_MS=200"
  "NO_COLOR=1"
)

# --- database, topology, receiver, webhook ---------------------------------
log "creating database $db and the quorum queue"
env "${common_env[@]}" "WEBHOOKD__BROKER__URLS=$(url 1),$(url 2),$(url 3)" "$webhookd" migrate >"$tmp/migrate.log" 2>&1
ctl 1 -q list_queues name type leader members

cat >"$tmp/receiver.py" <<'EOF'
import hashlib, hmac, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
secret, out, portfile = sys.argv[1].encode(), open(sys.argv[2], "a", buffering=1), sys.argv[3]
class Hook(BaseHTTPRequestHandler):
    # Keep-alive, and a deep accept backlog: with the default of 5 a burst of
    # new connections waits for SYN retransmits, attempts time out and are
    # retried, which would show as duplicates that are not the broker's.
    protocol_version = "HTTP/1.1"
    def reply(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(sig, self.headers.get("X-Webhook-Signature", "")):
            out.write("BADSIG %.3f\n" % time.time())
            return self.reply(401)
        out.write("%s %.3f\n" % (json.loads(body)["id"], time.time()))
        self.reply(200)
    def log_message(self, *args): pass
class Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
server = Server(("127.0.0.1", 0), Hook)
open(portfile, "w").write(str(server.server_address[1]))
server.serve_forever()
EOF
python3 "$tmp/receiver.py" "$SECRET" "$tmp/received.txt" "$tmp/receiver.port" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$tmp/receiver.port" ] && break; sleep 0.1; done
receiver=http://127.0.0.1:$(cat "$tmp/receiver.port")/hook

token=$(env "${common_env[@]}" "$webhookd" users create --name cluster-test --admin | tail -1)

# --- two workers, the nodes in different orders ------------------------------
start_worker() { # start_worker N PORT URLS ROLE
  env "${common_env[@]}" "WEBHOOKD__BROKER__URLS=$3" "WEBHOOKD__HTTP__LISTEN=127.0.0.1:$2" \
    "$webhookd" run --role "$4" >"$tmp/worker$1.log" 2>&1 &
  pids+=($!)
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port1=$(free_port)
port2=$(free_port)
start_worker 1 "$port1" "$(url 1),$(url 2),$(url 3)" all
start_worker 2 "$port2" "$(url 2),$(url 3),$(url 1)" worker
for port in "$port1" "$port2"; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
  done
done
curl -sf -X POST "http://127.0.0.1:$port1/api/v1/webhooks" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d "{\"name\":\"cluster\",\"url\":\"$receiver\",\"events\":[\"*\"],\"secret\":\"$SECRET\"}" >/dev/null
log "workers ready on :$port1 and :$port2; webhook -> $receiver"

# --- the publisher: RATE events a second, each second's batch confirmed ---
publish_loop() {
  local n=0 second=0
  while [ ! -e "$tmp/stop-publishing" ]; do
    local started batch=$tmp/batch.ndjson
    started=$(now)
    python3 - "$n" "$RATE" >"$batch" <<'EOF'
import json, sys, uuid
start, count = int(sys.argv[1]), int(sys.argv[2])
for k in range(start, start + count):
    print(json.dumps({"event": "task.created", "id": str(uuid.uuid4()),
                      "data": {"task_id": k, "title": "cluster test %d" % k}}))
EOF
    # The nodes in a rotating order: every node is somebody's first choice.
    local a=$((second % 3 + 1)) b=$(((second + 1) % 3 + 1)) c=$(((second + 2) % 3 + 1))
    if "$crm_events" --amqp-url "$(url $a),$(url $b),$(url $c)" --queue-type quorum \
      --exchange "$exchange" --queue "$queue" publish --file "$batch" >>"$tmp/publisher.log" 2>&1; then
      python3 -c 'import json,sys; [print(json.loads(l)["id"], sys.argv[2]) for l in open(sys.argv[1])]' "$batch" "$started" >>"$tmp/confirmed.txt"
      echo "$started $(now)" >>"$tmp/batches.txt"
    else
      python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in open(sys.argv[1])]' "$batch" >>"$tmp/unconfirmed.txt"
    fi
    n=$((n + RATE))
    second=$((second + 1))
    local spent
    spent=$(python3 -c "print(max(0.0, 1.0 - ($(now) - $started)))")
    sleep "$spent"
  done
}
: >"$tmp/confirmed.txt"
: >"$tmp/unconfirmed.txt"
: >"$tmp/received.txt"
publish_loop &
pids+=($!)
log "publishing $RATE events/s"

stops=()
record_stop() { echo "$1 $(now)" >>"$tmp/stops.txt"; stops+=("$1"); }

sleep "$PHASE_SECS"
# Worker 1 lists whd1 first: it is connected there.
log "kill -9 whd1 (worker 1's node)"
record_stop "kill -9 whd1 (worker 1's node)"
kill -9 "$(node_pid 1)"
sleep "$PHASE_SECS"
log "restarting whd1"
start_node 1
wait_node 1
sleep "$PHASE_SECS"

leader=$(ctl 2 -q list_queues --no-table-headers name leader | awk -v q="$queue" '$1 == q {print $2}')
leader_index=${leader#whd}
leader_index=${leader_index%@*}
log "stopping the quorum leader $leader"
record_stop "stop $leader (quorum leader)"
ctl "$leader_index" -q stop >/dev/null
sleep "$PHASE_SECS"
log "restarting $leader"
start_node "$leader_index"
wait_node "$leader_index"
sleep "$PHASE_SECS"

touch "$tmp/stop-publishing"
wait "${pids[-1]}" || true
log "publishing stopped; waiting for every confirmed event to be delivered"

confirmed=$(awk '{print $1}' "$tmp/confirmed.txt" | sort -u | wc -l)
for _ in $(seq 1 120); do
  delivered=$(grep -v BADSIG "$tmp/received.txt" | awk '{print $1}' | sort -u | comm -12 - <(awk '{print $1}' "$tmp/confirmed.txt" | sort -u) | wc -l)
  [ "$delivered" -ge "$confirmed" ] && break
  sleep 0.5
done
sleep 2 # the last attempts' rows are written in batches

psql -qAt -h 127.0.0.1 -U postgres -d "$db" -c \
  "SELECT DISTINCT d.event_id FROM webhook_logs l JOIN deliveries d ON d.id = l.delivery_id WHERE l.is_success" \
  >"$tmp/logged.txt"
ctl 2 -q list_queues name type leader members messages

if python3 - "$tmp" "$RATE" <<'EOF'
import sys
tmp, rate = sys.argv[1], int(sys.argv[2])
read = lambda name: [l.split() for l in open(f"{tmp}/{name}") if l.strip()]
from datetime import datetime
def stamp(line):
    try:
        return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
    except (ValueError, IndexError):
        return None
consuming_at = stamp
def lost_at(line):
    return stamp(line) if "broker session ended" in line else None
started = {l[0]: float(l[1]) for l in read("confirmed.txt")}
confirmed = set(started)
unconfirmed = {l[0] for l in read("unconfirmed.txt")}
received = [l for l in read("received.txt") if l[0] != "BADSIG"]
badsig = sum(1 for l in read("received.txt") if l[0] == "BADSIG")
got = {}
for event_id, at in received:
    got.setdefault(event_id, []).append(float(at))
logged = {l[0] for l in read("logged.txt")}
lost = confirmed - set(got)
unlogged = confirmed - logged
duplicates = sum(len(v) - 1 for v in got.values())
batches = [(float(a), float(b)) for a, b in read("batches.txt")]
print()
print("published  %d (%d in batches not confirmed)" % (len(confirmed) + len(unconfirmed), len(unconfirmed)))
print("confirmed  %d" % len(confirmed))
print("delivered  %d distinct confirmed events (%d requests, %d duplicates, %d bad signatures)"
      % (len(confirmed & set(got)), len(received), duplicates, badsig))
print("logged     %d confirmed events with a successful attempt in webhook_logs" % len(confirmed & logged))
print("lost       %d not delivered, %d not in webhook_logs" % (len(lost), len(unlogged)))
failures = [l.strip() for l in open(f"{tmp}/publisher.log") if l.startswith("error")]
for failure in sorted(set(failures)):
    print("publisher batch failed (%dx): %s" % (failures.count(failure), failure[:200]))
# Recovery: from a stop to the first confirmed batch published after it, and
# to the first delivery of an event published after it.
for line in open(f"{tmp}/stops.txt"):
    what, at = line.rsplit(" ", 1)
    at = float(at)
    after = [b for b in batches if b[0] >= at]
    confirm = (after[0][1] - at) if after else float("nan")
    # The first delivery of an event published after the stop.
    later = [min(v) for i, v in got.items() if started.get(i, 0) >= at]
    print("stop: %-34s first batch confirmed %.1fs later, first of its events delivered %.1fs later"
          % (what, confirm, (min(later) - at) if later else float("nan")))
    # A worker that lost its node logs "consuming" again once reconnected.
    for worker in ("worker1", "worker2"):
        again = [consuming_at(l) for l in open(f"{tmp}/{worker}.log") if "consuming" in l]
        again = [t for t in again if t and t > at]
        dropped = [lost_at(l) for l in open(f"{tmp}/{worker}.log")]
        if again and any(t and at <= t < at + 10 for t in dropped):
            print("      %s reconnected (consuming again) %.1fs after the stop" % (worker, again[0] - at))
sys.exit(1 if lost or unlogged or badsig or not confirmed else 0)
EOF
then
  status=0
  echo "PASS: no confirmed event lost"
else
  echo "FAIL: events lost (or none confirmed); see above" >&2
fi
exit $status
