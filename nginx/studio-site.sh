#!/bin/sh
# Render the Studio's nginx site from its templates when the container starts (the nginx image runs each
# executable /docker-entrypoint.d/*.sh before nginx). HTTP only, or HTTPS as soon as a Let's Encrypt
# certificate for NGINX_SERVER_NAME exists; body limits follow the app's MAX_REQUEST_BYTES and
# DATASET_MAX_BYTES. The tests run this very script with NGINX_ROOT and STUDIO_TEMPLATES pointed elsewhere.
set -eu

: "${NGINX_ROOT:=/etc/nginx}"
: "${STUDIO_TEMPLATES:=/etc/nginx/studio-templates}"
: "${NGINX_UPSTREAM:=web:8000}"
: "${NGINX_HTTP_LISTEN:=80}"
: "${NGINX_HTTPS_LISTEN:=443}"
: "${NGINX_SERVER_NAME:=_}"
: "${NGINX_STATIC_ROOT:=/usr/share/nginx/studio}"
: "${NGINX_ACME_ROOT:=/var/www/certbot}"
: "${NGINX_CERT_DIR:=/etc/letsencrypt/live/$NGINX_SERVER_NAME}"
: "${MAX_REQUEST_BYTES:=10485760}"
: "${DATASET_MAX_BYTES:=536870912}"

for number in "$MAX_REQUEST_BYTES" "$DATASET_MAX_BYTES"; do
  case $number in
    '' | *[!0-9]*) echo "studio-site: MAX_REQUEST_BYTES and DATASET_MAX_BYTES must be byte counts" >&2; exit 1 ;;
  esac
done

# The app reads a dataset upload of up to DATASET_MAX_BYTES plus 1 MiB of form around the file
# (FORM_OVERHEAD_BYTES in app/datasets/upload.py); nginx is the backstop just above that.
NGINX_UPLOAD_MAX_BODY=$((DATASET_MAX_BYTES + 1048576))
NGINX_MAX_BODY=$MAX_REQUEST_BYTES
export NGINX_UPSTREAM NGINX_HTTP_LISTEN NGINX_HTTPS_LISTEN NGINX_SERVER_NAME NGINX_STATIC_ROOT \
  NGINX_ACME_ROOT NGINX_CERT_DIR NGINX_MAX_BODY NGINX_UPLOAD_MAX_BODY

site=http
if [ -f "$NGINX_CERT_DIR/fullchain.pem" ] && [ -f "$NGINX_CERT_DIR/privkey.pem" ]; then
  site=https
fi

# Only these names are replaced, so nginx's own $variables pass through untouched.
# shellcheck disable=SC2016
names='${NGINX_UPSTREAM} ${NGINX_HTTP_LISTEN} ${NGINX_HTTPS_LISTEN} ${NGINX_SERVER_NAME} ${NGINX_STATIC_ROOT}
${NGINX_ACME_ROOT} ${NGINX_CERT_DIR} ${NGINX_MAX_BODY} ${NGINX_UPLOAD_MAX_BODY}'
mkdir -p "$NGINX_ROOT/conf.d" "$NGINX_ROOT/studio"
envsubst "$names" <"$STUDIO_TEMPLATES/locations.conf.template" >"$NGINX_ROOT/studio/locations.conf"
envsubst "$names" <"$STUDIO_TEMPLATES/common.conf.template" >"$NGINX_ROOT/conf.d/default.conf"
envsubst "$names" <"$STUDIO_TEMPLATES/$site.conf.template" >>"$NGINX_ROOT/conf.d/default.conf"
echo "studio-site: $site for server_name $NGINX_SERVER_NAME, proxying to $NGINX_UPSTREAM" >&2
