# Shared helpers for the set-up scripts (sourced, not run).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VAR="$ROOT/var"
mkdir -p "$VAR/run" "$VAR/log"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

APT_UPDATED=""
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: $*"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  say "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() {  # port_open HOST PORT
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() {  # wait_port HOST PORT SECONDS NAME
  local i
  for ((i = 0; i < $3 * 5; i++)); do port_open "$1" "$2" && return 0; sleep 0.2; done
  die "$4 did not start listening on $1:$2 within $3 s"
}

# host and port of a URL from the environment or .env, e.g. url_hostport REDIS_URL default
url_hostport() {
  local url="${!1:-}"
  [ -n "$url" ] || url=$(grep -s "^$1=" "$ROOT/.env" | cut -d= -f2- || true)
  [ -n "$url" ] || url="$2"
  "$VENV/bin/python" -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1] if "://" in sys.argv[1] else "x://" + sys.argv[1].split(",")[0]); print(p.hostname, p.port)' "$url"
}
