#!/usr/bin/env bash
# A private RabbitMQ node for measurements that change broker-wide settings (the long-jobs
# bench sets consumer_timeout), so the lab's shared RabbitMQ on 5672 is never touched:
#   node $PRIVATE_RABBIT_NODE (longjobs@localhost) on $PRIVATE_AMQP_PORT (5675), no plugins
# Usage: scripts/private_rabbit.sh start|stop|url
#        scripts/private_rabbit.sh consumer-timeout MS   (broker-wide; new channels only)
# `start` also sets channel_tick_interval to 1 s: RabbitMQ checks consumer timeouts on
# that tick (60 s by default), too coarse for a timer scaled down to seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${PRIVATE_AMQP_PORT:-5675}"
NODE="${PRIVATE_RABBIT_NODE:-longjobs@localhost}"
BASE="${PRIVATE_RABBIT_BASE:-/tmp/ocrlab-private-rabbit-$PORT}"
HOST=127.0.0.1
TICK_MS="${PRIVATE_RABBIT_TICK_MS:-1000}"

rabbit_env() {
  export RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_PORT="$PORT" \
    RABBITMQ_DIST_PORT=$((PORT + 20000)) RABBITMQ_MNESIA_BASE="$BASE/mnesia" \
    RABBITMQ_LOG_BASE="$BASE/log" RABBITMQ_CONFIG_FILE="$BASE/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins" RABBITMQ_PID_FILE="$BASE/pid"
}

ctl_eval() {
  rabbit_env
  rabbitmqctl -q -n "$NODE" eval "$1" >/dev/null
}

start() {
  if ! port_open "$HOST" "$PORT"; then
    say "starting RabbitMQ node $NODE on $PORT"
    mkdir -p "$BASE/mnesia" "$BASE/log"
    printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$PORT" \
      >"$BASE/rabbitmq.conf"
    echo '[].' >"$BASE/enabled_plugins"
    id rabbitmq >/dev/null 2>&1 && chown -R rabbitmq: "$BASE"
    rabbit_env
    (cd / && setsid rabbitmq-server -detached >/dev/null 2>&1 </dev/null) || true
    wait_port "$HOST" "$PORT" 90 RabbitMQ
  fi
  ctl_eval "application:set_env(rabbit, channel_tick_interval, $TICK_MS)."
}

case "${1:-}" in
  start) start ;;
  stop) rabbit_env; rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || true ;;
  url) echo "amqp://guest:guest@$HOST:$PORT//" ;;
  consumer-timeout)
    [[ "${2:-}" =~ ^[0-9]+$ ]] || die "usage: $0 consumer-timeout MS"
    ctl_eval "application:set_env(rabbit, consumer_timeout, $2)."
    ;;
  *) die "usage: $0 start|stop|url|consumer-timeout MS" ;;
esac
