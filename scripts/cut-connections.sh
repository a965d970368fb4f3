#!/usr/bin/env bash
# Cuts one webhookd process's own broker and Postgres connections every
# INTERVAL seconds (RabbitMQ closes them, Postgres terminates the backends),
# leaving every other client of the shared servers alone: a soak with this
# beside it shows whether reconnecting leaks (docs/PERFORMANCE.md, "Soak").
#   scripts/cut-connections.sh PID [INTERVAL]
set -euo pipefail
pid=${1:?usage: scripts/cut-connections.sh PID [INTERVAL]}
interval=${2:-30}
ports_to() { ss -tnp | grep "pid=$pid," | awk -v p=":$1\$" '$5 ~ p {n = split($4, a, ":"); print a[n]}'; }
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval"
  kill -0 "$pid" 2>/dev/null || break
  amqp=$(ports_to 5672)
  pg=$(ports_to 5432 | paste -sd, -)
  for port in $amqp; do
    rabbitmqctl -q list_connections pid peer_port |
      awk -v p="$port" '$2 == p {print $1}' |
      while read -r connection; do rabbitmqctl -q close_connection "$connection" "cut by cut-connections.sh" >/dev/null; done
  done
  terminated=0
  if [ -n "$pg" ]; then
    terminated=$(psql -h 127.0.0.1 -U postgres -qAtc \
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE client_port IN ($pg)" postgres)
  fi
  echo "$(date +%T) cut $(echo "$amqp" | wc -w) broker and $terminated Postgres connections; fds now $(ls "/proc/$pid/fd" | wc -l)"
done
