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
# Environment: STUDIO_BACKUP_HOOK, a command run after each phase with its name (objects, database), for
# notifications or tests; the backup fails if it fails.
#
# A backup is a folder named like 20261128T020000Z, readable by its owner alone (0700, files 0600):
#   objects.tar       every object of the bucket (`python -m scripts.objects export`), taken FIRST
#   database.dump     pg_dump's custom format, taken SECOND: every object a row of it names either existed
#                     during the export above or was written after it...
#   referenced.keys   ...so the keys its rows point to are listed,
#   objects-late.tar  and those the first export lacks are exported now (the backup fails, naming them,
#                     if one is gone: a row would point to nothing after a restore)
#   objects.sha256    the checksum of every object in both tars
#   backup.info       sizes and counts
#   manifest.sha256        the checksum of every file above; restore.sh checks it before touching anything
# It is written as .partial-* and renamed only once complete.
set -euo pipefail
# Backups hold every secret the database does (password hashes, token hashes, Kaggle datasets): private.
umask 077
# One byte order for sort and comm.
export LC_ALL=C
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

say "exporting the objects"
run_objects export >"$partial/objects.tar"
tar -xOf "$partial/objects.tar" objects.sha256 >"$partial/objects.sha256"
run_hook objects
say "dumping the database"
dump_database >"$partial/database.dump"
run_hook database
say "listing the objects its rows point to"
mapfile -t tables < <(run_objects tables)
[ "${#tables[@]}" -gt 0 ] || die "could not learn which tables point to objects"
referenced_data "${tables[@]}" <"$partial/database.dump" | run_objects referenced >"$partial/referenced.keys"
say "exporting the objects written since the first export"
comm -23 <(sort -u "$partial/referenced.keys") <(cut -c67- "$partial/objects.sha256" | sort -u) \
  | run_objects export --keys-from-stdin >"$partial/objects-late.tar"
tar -xOf "$partial/objects-late.tar" objects.sha256 >>"$partial/objects.sha256"
objects=$(wc -l <"$partial/objects.sha256")
{
  echo "created: $stamp"
  echo "mode: $mode"
  echo "database_bytes: $(wc -c <"$partial/database.dump")"
  echo "objects: $objects"
  echo "objects_bytes: $(($(wc -c <"$partial/objects.tar") + $(wc -c <"$partial/objects-late.tar")))"
  echo "referenced_objects: $(wc -l <"$partial/referenced.keys")"
} >"$partial/backup.info"
(cd "$partial" && sha256sum -- objects.tar database.dump referenced.keys objects-late.tar objects.sha256 \
  backup.info >manifest.sha256)
mv "$partial" "$dest/$stamp"
trap - EXIT
say "backup complete: $dest/$stamp ($objects objects)"

prune_backups "$dest" "$keep" "$max_age_days"
