#!/usr/bin/env bash
# Regenerates src/sqlite/schema.rs and src/postgres/schema.rs from the migrations.
#
# Needs diesel_cli (`cargo install diesel_cli --no-default-features --features "sqlite-bundled postgres" --locked`)
# and, for PostgreSQL, a server: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names a database
# to connect to; a scratch database is created beside it and dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")"
migrations=../../migrations

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
diesel migration run --migration-dir "$migrations/sqlite" \
    --database-url "$scratch/schema.db" >/dev/null
diesel print-schema --database-url "$scratch/schema.db" >src/sqlite/schema.rs

admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
db="gw_schema_$$"
base=${admin%/*}
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
cleanup_pg() { psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; }
trap 'cleanup_pg; rm -rf "$scratch"' EXIT
diesel migration run --migration-dir "$migrations/postgres" \
    --database-url "$base/$db" >/dev/null
diesel print-schema --database-url "$base/$db" >src/postgres/schema.rs
echo "regenerated src/sqlite/schema.rs and src/postgres/schema.rs"
