#!/usr/bin/env bash
# The postgres container's init script (mounted into /docker-entrypoint-initdb.d; it runs once, when the data
# volume is new): create the app's own role, STUDIO_DB_USER with STUDIO_DB_PASSWORD, without superuser,
# database or role creation rights, and make it the owner of POSTGRES_DB, so the app can migrate its own
# schema and nothing beyond it. POSTGRES_USER (the superuser) stays for maintenance: backup.sh, restore.sh.
#
# The entrypoint may source this file rather than run it, so it changes no shell option and calls no exit;
# the password goes through psql's environment (\getenv), never its command line.
: "${STUDIO_DB_USER:?set STUDIO_DB_USER}" "${STUDIO_DB_PASSWORD:?set STUDIO_DB_PASSWORD}"
: "${POSTGRES_USER:?set POSTGRES_USER}" "${POSTGRES_DB:?set POSTGRES_DB}"
psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv app_role STUDIO_DB_USER
\getenv app_password STUDIO_DB_PASSWORD
CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER DATABASE :"DBNAME" OWNER TO :"app_role";
-- The public schema belongs to the database's owner (PostgreSQL 15+); with 16 that is now the app's role.
REVOKE ALL ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"app_role";
SQL
