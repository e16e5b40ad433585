#!/usr/bin/env bash
# Start or stop the lab's own processes: the API, the OCR servers and one worker pool per
# backend in $STACK_WORKERS. Pid files and logs live under var/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
PY="$VENV/bin/python"
API_PORT="${API_PORT:-8000}"
STACK_WORKERS="${STACK_WORKERS:-db redis rabbit kafka}"

ocr_ports() {
  "$PY" -c 'from ocrproject.env import load_dotenv, env_list; import pathlib, urllib.parse as u
load_dotenv(pathlib.Path(".env"))
print(" ".join(str(u.urlsplit(x).port) for x in env_list("OCR_SERVER_URLS", "http://127.0.0.1:8101,http://127.0.0.1:8102")))'
}

start_bg() {  # start_bg NAME COMMAND...
  local name=$1; shift
  local pidfile="$VAR/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  setsid "$@" >>"$VAR/log/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
}

stop_bg() {  # stop_bg PIDFILE: SIGTERM the process group, wait, then SIGKILL
  local pidfile=$1 pid i
  pid=$(cat "$pidfile" 2>/dev/null || true)
  rm -f "$pidfile"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

start() {
  local port alias
  for port in $(ocr_ports); do
    start_bg "ocr-server-$port" "$PY" -m ocrproject.launch ocr-server --port "$port"
  done
  start_bg api "$PY" -m ocrproject.launch api --port "$API_PORT"
  for alias in $STACK_WORKERS; do
    start_bg "worker-$alias" "$PY" manage.py runworker --backend "$alias" --workers 1
  done
  for port in $(ocr_ports) "$API_PORT"; do wait_port 127.0.0.1 "$port" 60 "server on :$port"; done
}

stop() {
  local pidfile
  for pidfile in "$VAR"/run/api.pid "$VAR"/run/ocr-server-*.pid "$VAR"/run/worker-*.pid; do
    [ -e "$pidfile" ] && stop_bg "$pidfile"
  done
  return 0
}

stop_workers() {  # the bench starts its own workers; stack workers would compete for cores
  local pidfile
  for pidfile in "$VAR"/run/worker-*.pid; do [ -e "$pidfile" ] && stop_bg "$pidfile"; done
  return 0
}

status() {
  local pidfile
  for pidfile in "$VAR"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "running  $(basename "$pidfile" .pid)"
    else echo "stopped  $(basename "$pidfile" .pid)"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  stop-workers) stop_workers ;;
  status) status ;;
  *) die "usage: $0 start|stop|stop-workers|status" ;;
esac
