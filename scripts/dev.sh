#!/usr/bin/env bash
# `make dev`: set up, then run the web app and a worker in the foreground with the embedded defaults
# (SQLite and a local folder under data/, a local Redis started here when none answers).
# Ctrl-C, or SIGTERM to the process group, stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ -f .env ]; then set -a; . ./.env; set +a; fi
export STUDIO_ENV=${STUDIO_ENV:-development}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export PORT=${PORT:-5000}
export FLASK_APP=wsgi
export PYTHONUNBUFFERED=1

scripts/setup.sh runtime

children=()
stop_children() {
  trap - INT TERM EXIT
  [ ${#children[@]} -gt 0 ] || return 0
  say "stopping"
  kill -TERM "${children[@]}" 2>/dev/null || true
  wait "${children[@]}" 2>/dev/null || true
}
trap stop_children EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_local_redis() {
  redis_is_local "$REDIS_URL" || die "no Redis answers at $REDIS_URL; start it or point REDIS_URL at one"
  ensure_command redis-server redis-server "Redis (Debian: sudo apt-get install redis-server)"
  local port
  port=$(redis_port "$REDIS_URL")
  say "starting redis-server on 127.0.0.1:$port (stops with this command)"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning &
  children+=($!)
  wait_for_redis "$REDIS_URL" 15 || die "redis-server did not answer on port $port"
}
redis_ping "$REDIS_URL" || start_local_redis

.venv/bin/flask db upgrade
.venv/bin/flask users ensure-admin

.venv/bin/python -m workers &
children+=($!)
# The playground's worker keeps a loaded model warm between completions (app/playground).
.venv/bin/python -m workers --playground &
children+=($!)
.venv/bin/flask run --host 127.0.0.1 --port "$PORT" &
children+=($!)
say "Finetune Studio at http://127.0.0.1:$PORT (Ctrl-C stops it)"

# The first child to end (or a signal) ends the session; the EXIT trap stops the rest.
wait -n "${children[@]}"
