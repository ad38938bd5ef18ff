# Shared by backup.sh and restore.sh (sourced, not run): where the database and the objects are, and how
# to reach them, either through the compose stack or directly from this host.
# shellcheck shell=bash source-path=SCRIPTDIR

# root (the checkout) is set by the script that sources this file.
# shellcheck disable=SC2154 source=lib.sh
. "$root/scripts/lib.sh"

mode=direct
compose_file="$root/docker-compose.prod.yml"
remaining_args=()

# parse_common_options ARGS...: take --compose, --compose-file and --env-file; the rest go to remaining_args.
parse_common_options() {
  while [ $# -gt 0 ]; do
    case $1 in
      --compose) mode=compose; shift ;;
      --compose-file) compose_file=$2; shift 2 ;;
      --env-file)
        [ -r "$2" ] || die "cannot read $2"
        set -a
        # shellcheck disable=SC1090
        . "$2"
        set +a
        shift 2 ;;
      *) remaining_args+=("$1"); shift ;;
    esac
  done
}

# compose ARGS...: docker compose (the plugin, else the standalone docker-compose) on the stack's file.
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$compose_file" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f "$compose_file" "$@"
  else
    die "neither 'docker compose' nor 'docker-compose' is installed"
  fi
}

# in_postgres COMMAND ARGS...: a PostgreSQL client command in the postgres container, as its owner.
in_postgres() {
  # shellcheck disable=SC2016
  compose exec -T postgres sh -c 'exec "$0" -U "$POSTGRES_USER" -d "$POSTGRES_DB" "$@"' "$@"
}

# use_direct_database: point the PostgreSQL clients at DATABASE_URL, else at DB_HOST and the other DB_*.
use_direct_database() {
  if [ -n "${DATABASE_URL:-}" ]; then
    case $DATABASE_URL in
      postgres://* | postgresql://*) database_args=(--dbname="$DATABASE_URL") ;;
      *) die "DATABASE_URL is not a PostgreSQL URL; backup.sh and restore.sh handle PostgreSQL only" ;;
    esac
    return
  fi
  [ -n "${DB_HOST:-}" ] || die "set DATABASE_URL or DB_HOST (or use --compose, or --env-file FILE)"
  export PGHOST=$DB_HOST PGPORT=${DB_PORT:-5432} PGUSER=${DB_USER:-studio} PGDATABASE=${DB_NAME:-finetune_studio}
  export PGPASSWORD=${DB_PASSWORD:-}
  database_args=()
}

# dump_database: the whole database in pg_dump's custom format, on stdout.
dump_database() {
  local options=(--format=custom --no-owner --no-privileges)
  if [ "$mode" = compose ]; then
    in_postgres pg_dump "${options[@]}"
  else
    use_direct_database
    pg_dump "${database_args[@]}" "${options[@]}"
  fi
}

# referenced_data TABLE...: the rows of these tables as SQL (COPY blocks), from a custom-format dump on stdin.
referenced_data() {
  local table options=(--data-only --file=-)
  for table in "$@"; do options+=(--table="$table"); done
  if [ "$mode" = compose ]; then
    # No database: pg_restore only reads the dump and writes SQL.
    compose exec -T postgres pg_restore "${options[@]}"
  else
    pg_restore "${options[@]}"
  fi
}

# restore_database FORCE: pg_restore a custom-format dump from stdin (FORCE=1 drops what the dump holds first).
restore_database() {
  local options=(--no-owner --no-privileges --exit-on-error --single-transaction)
  [ "$1" = 1 ] && options+=(--clean --if-exists)
  if [ "$mode" = compose ]; then
    # As the superuser, but creating everything as the app's own role (STUDIO_DB_USER), which must own it.
    # shellcheck disable=SC2016
    compose exec -T postgres sh -c 'exec pg_restore -U "$POSTGRES_USER" -d "$POSTGRES_DB" --role="$STUDIO_DB_USER" "$@"' \
      pg_restore "${options[@]}"
  else
    use_direct_database
    pg_restore "${database_args[@]}" "${options[@]}"
  fi
}

# database_table_count: how many tables the database holds outside PostgreSQL's own schemas.
database_table_count() {
  local sql="SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
  if [ "$mode" = compose ]; then
    in_postgres psql -X -A -t -c "$sql"
  else
    use_direct_database
    psql "${database_args[@]}" -X -A -t -c "$sql"
  fi
}

# run_objects ARGS...: `python -m scripts.objects ARGS` in a one-off worker container, or with this checkout's Python.
run_objects() {
  if [ "$mode" = compose ]; then
    compose run --rm --no-deps -T worker python -m scripts.objects "$@"
  else
    local python=${PYTHON:-}
    if [ -z "$python" ]; then
      python=python3
      [ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"
    fi
    (cd "$root" && "$python" -m scripts.objects "$@")
  fi
}

# run_hook PHASE: run STUDIO_BACKUP_HOOK (a command, split on spaces) with the phase that just ended, if set.
run_hook() {
  [ -n "${STUDIO_BACKUP_HOOK:-}" ] || return 0
  local hook
  read -ra hook <<<"$STUDIO_BACKUP_HOOK"
  "${hook[@]}" "$1" || die "STUDIO_BACKUP_HOOK failed after the $1 phase"
}

# prune_backups DEST KEEP MAX_AGE_DAYS: keep the KEEP newest backups, minus those older than MAX_AGE_DAYS
# (0: no age limit); the newest is always kept. Also drops unfinished .partial-* folders older than a day.
prune_backups() {
  local dest=$1 keep=$2 max_age=$3 name backups=()
  mapfile -t backups < <(find "$dest" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9]{8}T[0-9]{6}Z' -printf '%f\n' | sort -r)
  for name in "${backups[@]:$keep}"; do
    say "removing backup $name (beyond the newest $keep)"
    rm -rf "${dest:?}/$name"
  done
  if [ "$max_age" -gt 0 ]; then
    for name in "${backups[@]:1:$((keep - 1))}"; do
      if [ -n "$(find "$dest/$name" -maxdepth 0 -mtime +"$max_age")" ]; then
        say "removing backup $name (older than $max_age days)"
        rm -rf "${dest:?}/$name"
      fi
    done
  fi
  find "$dest" -mindepth 1 -maxdepth 1 -type d -name '.partial-*' -mtime +0 -exec rm -rf {} +
}
