# Shared helpers of the setup scripts (sourced, not run).

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_command CMD DEBIAN_PACKAGE DESCRIPTION: install the package with apt when root, else explain.
ensure_command() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2" || die "$1 is missing: install $3"
  command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing $2"
}

# apt_install PACKAGE...: install with apt-get when we are root and apt-get exists; fail otherwise.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  say "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}

# ensure_venv: a Python 3.11+ virtualenv in .venv (Debian splits venv into python3-venv).
ensure_venv() {
  [ -x .venv/bin/python ] && return 0
  local python=${PYTHON:-python3}
  command -v "$python" >/dev/null || die "$python not found: install Python 3.11 (Debian: apt-get install python3)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required"
  if ! "$python" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv || die "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)"
    "$python" -m venv .venv
  fi
}

# redis_ping URL: whether a Redis answers at URL.
redis_ping() {
  .venv/bin/python - "$1" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=2).ping()
PY
}

# wait_for_redis URL SECONDS: poll until Redis answers or the deadline passes.
wait_for_redis() {
  local deadline=$((SECONDS + $2))
  until redis_ping "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# redis_port URL: the port of a Redis URL (6379 when absent).
redis_port() {
  .venv/bin/python -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 6379)' "$1"
}

# redis_is_local URL: whether URL points at this machine, where we may start a server.
redis_is_local() {
  .venv/bin/python -c 'import sys, urllib.parse as u; sys.exit(u.urlsplit(sys.argv[1]).hostname not in ("127.0.0.1", "localhost", "::1"))' "$1"
}
