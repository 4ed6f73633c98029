#!/usr/bin/env bash
# First start of the production Postgres: the Airflow database and the serving tier's
# read-only role (its password from the environment, never from the repository).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader_pw="$SERVING_DB_PASSWORD" <<'SQL'
CREATE DATABASE airflow OWNER recs;
CREATE ROLE recs_reader LOGIN PASSWORD :'reader_pw';
GRANT CONNECT ON DATABASE recs TO recs_reader;
GRANT USAGE ON SCHEMA public TO recs_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE recs IN SCHEMA public GRANT SELECT ON TABLES TO recs_reader;
SQL
