#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Back up the Studio: a PostgreSQL dump and every object of its bucket, into a timestamped folder, then
# delete old backups (by count and by age). Restore with scripts/restore.sh.
#
#   scripts/backup.sh --compose                  # the production stack (docker compose), from its checkout
#   scripts/backup.sh --env-file /etc/studio.env  # direct: pg_dump and the virtualenv's Python on this host
#
# Options:
#   --compose          run pg_dump in the postgres container and the object export in a one-off worker
#                      container (`docker compose run`), so the host needs nothing but Docker
#   --compose-file F   the compose file (default: docker-compose.prod.yml beside scripts/)
#   --env-file F       direct mode: read DATABASE_URL or DB_*, and MINIO_*, from F (else the environment)
#   --dest DIR         where backups go (default: data/backups in the checkout)
#   --keep N           keep the N newest backups (default 7)
#   --max-age-days D   also delete backups older than D days, never the newest (default 30; 0: no limit)
#
# A backup is a folder named like 20261128T020000Z holding database.dump (pg_dump's custom format),
# objects.tar (the bucket, from `python -m scripts.objects export`), objects.sha256 (the objects'
# checksums) and backup.info. It is written as .partial-* and renamed only once complete.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=backup_lib.sh
. "$root/scripts/backup_lib.sh"

dest="$root/data/backups"
keep=7
max_age_days=30
parse_common_options "$@"
set -- "${remaining_args[@]+"${remaining_args[@]}"}"
while [ $# -gt 0 ]; do
  case $1 in
    --dest) dest=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --max-age-days) max_age_days=$2; shift 2 ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $keep =~ ^[1-9][0-9]*$ ]] || die "--keep needs a positive number"
[[ $max_age_days =~ ^[0-9]+$ ]] || die "--max-age-days needs a number of days"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dest"
partial="$dest/.partial-$stamp"
[ ! -e "$dest/$stamp" ] || die "a backup named $stamp exists already"
mkdir "$partial"
trap 'rm -rf "$partial"' EXIT

say "dumping the database"
dump_database >"$partial/database.dump"
say "exporting the objects"
run_objects export >"$partial/objects.tar"
tar -xOf "$partial/objects.tar" objects.sha256 >"$partial/objects.sha256"
objects=$(wc -l <"$partial/objects.sha256")
{
  echo "created: $stamp"
  echo "mode: $mode"
  echo "database_bytes: $(wc -c <"$partial/database.dump")"
  echo "objects: $objects"
  echo "objects_bytes: $(wc -c <"$partial/objects.tar")"
} >"$partial/backup.info"
mv "$partial" "$dest/$stamp"
trap - EXIT
say "backup complete: $dest/$stamp ($objects objects)"

prune_backups "$dest" "$keep" "$max_age_days"
