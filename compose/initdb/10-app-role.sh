#!/bin/sh
# Run by the postgres image once, on an empty data directory: the lab's own role `ocrlab`,
# not a superuser, owner of the `ocrlab` database (and so, on PostgreSQL 15, of its public
# schema: it can migrate). The app connects as this role; the superuser stays unused.
set -eu
: "${OCRLAB_DB_PASSWORD:?set OCRLAB_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 -v app_password="$OCRLAB_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE ocrlab LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
  PASSWORD :'app_password';
ALTER DATABASE ocrlab OWNER TO ocrlab;
ALTER SCHEMA public OWNER TO ocrlab;
SQL
