#!/usr/bin/env bash
# Runs once, when the postgres image initialises an empty data directory
# (/docker-entrypoint-initdb.d). One login role and ONE DATABASE PER SERVICE:
# ketnap_intake, ketnap_quota, ketnap_reporting, each owned by its service's role and
# closed to the others, so a service can reach only its own tables.
# Passwords come from compose secrets /run/secrets/<service>_db_password.
set -euo pipefail

for svc in intake quota reporting; do
  password="$(tr -d '\r\n' < "/run/secrets/${svc}_db_password")"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
       -v role="$svc" -v db="ketnap_${svc}" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
SQL
  echo "init-databases: ketnap_${svc} owned by ${svc}"
done
