#!/usr/bin/env bash
# Smoke-test a running Studio: liveness and health, security headers (each sent once), the login page,
# static files (caching and compression, when nginx serves them), metrics with and without the token, and
# rate limiting (429 with Retry-After). Prints one line per check; exits 1 when any check fails.
#
#   scripts/test_production.sh https://studio.example.com
#   METRICS_TOKEN=... scripts/test_production.sh http://127.0.0.1
#
# Options:
#   --metrics-token T   the METRICS_TOKEN (default: $METRICS_TOKEN); without one the metrics check only
#                       makes sure the endpoint is not open to everyone
#   --skip-rate-limit   do not exhaust this address's request budget (the check costs it about a minute of
#                       429s: RATE_LIMIT_GLOBAL requests to an unknown API path)
#   --rate-limit-max N  give up on seeing a 429 after N requests (default 150)
#   --insecure          accept a self-signed certificate
# Needs curl and python3.
set -euo pipefail

base=""
metrics_token=${METRICS_TOKEN:-}
check_rate_limit=1
rate_limit_max=150
curl_options=(--silent --show-error --max-time 20)
while [ $# -gt 0 ]; do
  case $1 in
    --metrics-token) metrics_token=$2; shift 2 ;;
    --skip-rate-limit) check_rate_limit=0; shift ;;
    --rate-limit-max) rate_limit_max=$2; shift 2 ;;
    --insecure) curl_options+=(--insecure); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) base=${1%/}; shift ;;
  esac
done
[ -n "$base" ] || { echo "usage: $0 URL [options] (see --help)" >&2; exit 2; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

failures=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ok() { printf 'ok    %s\n' "$*"; }
warn() { printf 'warn  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }

# fetch NAME PATH [CURL ARGS...]: GET base/PATH; headers in $work/NAME.h, body in $work/NAME.b; prints the status.
fetch() {
  local name=$1 path=$2
  shift 2
  curl "${curl_options[@]}" --dump-header "$work/$name.h" --output "$work/$name.b" --write-out '%{http_code}' \
    "$@" "$base$path" || echo 000
}

# header NAME FIELD: the values of header FIELD in response NAME, one per line (case-insensitive).
header() {
  tr -d '\r' <"$work/$1.h" | awk -v field="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" -F': ' \
    'tolower($1) == field { sub(/^[^:]*: /, ""); print }'
}

# json_field NAME EXPRESSION: a Python expression over the JSON body `d` of response NAME.
json_field() {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$work/$1.b" "$2" \
    2>/dev/null || echo "?"
}

check_liveness() {
  local status
  status=$(fetch live /api/v1/health/live)
  if [ "$status" = 200 ]; then ok "liveness: 200"; else fail "liveness: GET /api/v1/health/live answered $status"; fi
}

check_health() {
  local status overall services
  status=$(fetch health /api/v1/health)
  overall=$(json_field health 'd["status"]')
  services=$(json_field health '" ".join(f"{k}={v[\"status\"]}" for k, v in sorted(d["services"].items()))')
  case "$status/$overall" in
    200/healthy) ok "health: healthy ($services)" ;;
    200/degraded) warn "health: degraded ($services)" ;;
    *) fail "health: $status $overall ($services)" ;;
  esac
}

# expect_header RESPONSE FIELD PATTERN: the header is present exactly once and matches the extended regex.
expect_header() {
  local values count
  values=$(header "$1" "$2")
  count=$(printf '%s' "$values" | grep -c . || true)
  if [ "$count" = 1 ] && printf '%s' "$values" | grep -Eq "$3"; then
    ok "header $2: $values"
  elif [ "$count" -gt 1 ]; then
    fail "header $2 sent $count times: $(printf '%s' "$values" | tr '\n' '|')"
  else
    fail "header $2: '${values}' does not match $3"
  fi
}

check_login_page() {
  local status cookie
  status=$(fetch login /login)
  if [ "$status" = 200 ] && grep -q 'name="csrf_token"' "$work/login.b"; then
    ok "login page: 200 with a CSRF-protected form"
  else
    fail "login page: GET /login answered $status$(grep -q csrf_token "$work/login.b" || echo ', without a CSRF token')"
  fi
  expect_header login Content-Security-Policy "default-src 'self'"
  expect_header login X-Frame-Options '^DENY$'
  expect_header login X-Content-Type-Options '^nosniff$'
  expect_header login Referrer-Policy '.'
  expect_header login Permissions-Policy 'camera=\(\)'
  if [[ $base == https://* ]]; then
    expect_header login Strict-Transport-Security 'max-age=[1-9]'
  else
    warn "not HTTPS: no Strict-Transport-Security expected (see the TLS step of the deployment guide)"
  fi
  cookie=$(header login Set-Cookie | grep -i '^studio_session=' || true)
  if [ -z "$cookie" ]; then
    warn "no session cookie on the login page"
  elif ! grep -qi 'httponly' <<<"$cookie"; then
    fail "session cookie without HttpOnly"
  elif [[ $base == https://* ]] && ! grep -qi 'secure' <<<"$cookie"; then
    fail "session cookie without Secure over HTTPS: set FORCE_HTTPS=true"
  else
    ok "session cookie: HttpOnly$([[ $base == https://* ]] && echo ', Secure')"
  fi
  if header login Server | grep -Eq '[0-9]+\.[0-9]+'; then
    fail "the Server header names a version: $(header login Server)"
  fi
}

check_static() {
  local status cache encoding
  status=$(fetch static /static/vendor/htmx.min.js --header 'Accept-Encoding: gzip')
  cache=$(header static Cache-Control)
  encoding=$(header static Content-Encoding)
  if [ "$status" != 200 ]; then
    fail "static files: GET /static/vendor/htmx.min.js answered $status"
  elif [[ $cache == *max-age=* && $encoding == gzip ]]; then
    ok "static files: cached ($cache) and compressed"
    expect_header static X-Content-Type-Options '^nosniff$'
  else
    warn "static files: served without caching or compression (no nginx in front?)"
  fi
}

check_metrics() {
  local open with_token
  open=$(fetch metrics-open /api/v1/metrics)
  if [ "$open" = 200 ]; then
    fail "metrics: /api/v1/metrics is open to anyone; set METRICS_TOKEN"
  else
    ok "metrics: refused without the token ($open)"
  fi
  if [ -z "$metrics_token" ]; then
    warn "metrics: no --metrics-token given, the token itself was not tried"
    return
  fi
  with_token=$(fetch metrics /api/v1/metrics --header "Authorization: Bearer $metrics_token")
  if [ "$with_token" = 200 ] && grep -q '^studio_info' "$work/metrics.b"; then
    ok "metrics: 200 with the token"
  else
    fail "metrics: $with_token with the token (is it this deployment's METRICS_TOKEN?)"
  fi
}

check_rate_limit() {
  local sent=0 status="" batch urls
  while [ "$sent" -lt "$rate_limit_max" ]; do
    batch=$((rate_limit_max - sent < 10 ? rate_limit_max - sent : 10))
    urls=()
    for _ in $(seq "$batch"); do urls+=(--output /dev/null "$base/api/v1/__smoke_test__"); done
    status=$(curl "${curl_options[@]}" --write-out '%{http_code}\n' "${urls[@]}" || true)
    sent=$((sent + batch))
    grep -q '^429$' <<<"$status" && break
  done
  if ! grep -q '^429$' <<<"$status"; then
    fail "rate limit: no 429 after $sent requests (RATE_LIMIT_GLOBAL above $rate_limit_max per minute?)"
    return
  fi
  status=$(fetch limited /api/v1/__smoke_test__)
  if [ "$status" = 429 ] && [ "$(json_field limited 'd["error"]["code"]')" = rate_limited ]; then
    ok "rate limit: 429 after $sent requests, Retry-After: $(header limited Retry-After)"
    expect_header limited Retry-After '^[0-9]+$'
  else
    fail "rate limit: a refused request answered $status without the rate_limited error"
  fi
}

echo "Smoke-testing $base"
check_liveness
check_health
check_login_page
check_static
check_metrics
if [ "$check_rate_limit" = 1 ]; then check_rate_limit; else warn "rate limit: skipped"; fi
if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
