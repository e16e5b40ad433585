#!/usr/bin/env bash
# The lab's own background processes (make up / down / status): the API, the OCR servers
# and one worker pool per backend in $STACK_WORKERS. A thin wrapper: the work is done by
# apps/ops/stack.py (pid files in var/run, logs in var/log; see its --help).
#   scripts/stack.sh start|stop|stop-workers|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m apps.ops.stack "$@"
