#!/usr/bin/env bash
# `make test`: install the test tools, make sure PostgreSQL and Redis answer, run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_auth.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

scripts/setup.sh dev

postgres_ping() {
  .venv/bin/python -c 'import sys, psycopg2; psycopg2.connect(sys.argv[1], connect_timeout=2).close()' \
    "$TEST_DATABASE_URL" 2>/dev/null
}
if ! postgres_ping; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  deadline=$((SECONDS + 30))
  until postgres_ping; do
    [ $SECONDS -lt $deadline ] || die "PostgreSQL does not answer at $TEST_DATABASE_URL (set TEST_DATABASE_URL)"
    sleep 0.5
  done
fi

if ! redis_ping "$TEST_REDIS_URL"; then
  redis_is_local "$TEST_REDIS_URL" || die "Redis does not answer at $TEST_REDIS_URL"
  ensure_command redis-server redis-server "Redis (Debian: apt-get install redis-server)"
  say "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$(redis_port "$TEST_REDIS_URL")" --save "" --appendonly no
  wait_for_redis "$TEST_REDIS_URL" 15 || die "redis-server did not start"
fi

# The proxy tests put a real nginx in front of gunicorn; the metrics tests check the exposition with promtool.
ensure_command nginx nginx "nginx (Debian: apt-get install nginx)"
ensure_command promtool prometheus "promtool (Debian: apt-get install prometheus)"
# The deployment tests lint the shell scripts; nginx/studio-site.sh renders with envsubst, as in the nginx image.
ensure_command shellcheck shellcheck "shellcheck (Debian: apt-get install shellcheck)"
ensure_command envsubst gettext-base "envsubst (Debian: apt-get install gettext-base)"
ensure_command openssl openssl "openssl (Debian: apt-get install openssl)"
# The browser tests (tests/ui) drive Debian's Chromium with Playwright; Playwright never downloads a browser here.
ensure_command chromium chromium "Chromium (Debian: apt-get install chromium)"

exec .venv/bin/python -m pytest "$@"
