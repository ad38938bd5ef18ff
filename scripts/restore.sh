#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Restore a backup made by scripts/backup.sh into an EMPTY database and an empty bucket: it refuses to
# write over data unless --force. Before touching anything it checks every file against the backup's
# manifest.sha256 and that every object a row points to is in the backup; every object's checksum is checked
# again as it is uploaded.
#
#   scripts/restore.sh --compose data/backups/20261128T020000Z
#   scripts/restore.sh --env-file /etc/studio.env data/backups/20261128T020000Z
#
# With the compose stack, start only the data services first, so nothing writes meanwhile and the
# migrate service has not created the tables yet:
#   docker compose -f docker-compose.prod.yml up -d postgres redis minio minio-init
#   scripts/restore.sh --compose data/backups/20261128T020000Z
#   docker compose -f docker-compose.prod.yml up -d
#
# Options:
#   --compose          restore through the compose stack (see backup.sh)
#   --compose-file F   the compose file (default: docker-compose.prod.yml beside scripts/)
#   --env-file F       direct mode: read DATABASE_URL or DB_*, and MINIO_*, from F (else the environment)
#   --force            restore over existing data: the dump's tables are dropped and recreated, objects of
#                      the same key replaced; anything the backup does not hold stays
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=backup_lib.sh
. "$root/scripts/backup_lib.sh"

# check_backup FOLDER: refuse a backup whose files do not match its manifest.sha256, or whose rows point to an
# object it does not hold.
check_backup() {
  local folder=$1 file missing
  [ -s "$folder/manifest.sha256" ] || die "$folder/manifest.sha256 is missing: not a complete backup"
  for file in objects.tar database.dump referenced.keys objects-late.tar objects.sha256 backup.info; do
    [ -f "$folder/$file" ] || die "$folder/$file is missing: not a complete backup"
    grep -q "  $file\$" "$folder/manifest.sha256" || die "$folder/manifest.sha256 does not vouch for $file"
  done
  (cd "$folder" && sha256sum --check --strict --quiet manifest.sha256) \
    || die "$folder does not match its manifest.sha256: a file was changed or truncated since the backup"
  missing=$(comm -23 <(sort -u "$folder/referenced.keys") <(cut -c67- "$folder/objects.sha256" | sort -u))
  [ -z "$missing" ] || die "the backup lacks objects its rows point to: ${missing//$'\n'/, }"
}

force=0
backup=""
parse_common_options "$@"
set -- "${remaining_args[@]+"${remaining_args[@]}"}"
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=1; shift ;;
    -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$backup" ] || die "name one backup folder"; backup=$1; shift ;;
  esac
done
[ -n "$backup" ] || die "name the backup folder to restore (see --help)"
export LC_ALL=C
check_backup "$backup"

# Both targets are checked before either is touched, so a refusal leaves everything as it was.
if [ "$force" = 0 ]; then
  tables=$(database_table_count | tr -d '[:space:]')
  [ "$tables" = 0 ] || die "the database already holds $tables tables; restore into an empty one, or --force"
  objects=$(run_objects count | tr -d '[:space:]')
  [ "$objects" = 0 ] || die "the bucket already holds $objects objects; restore into an empty one, or --force"
fi

say "restoring the database from $backup/database.dump"
restore_database "$force" <"$backup/database.dump"
say "restoring the objects from $backup/objects.tar"
import_args=(import)
[ "$force" = 1 ] && import_args+=(--force)
run_objects "${import_args[@]}" <"$backup/objects.tar"
# The objects written while the backup ran: into the bucket the first import filled.
run_objects import --force <"$backup/objects-late.tar"
say "restore complete"
