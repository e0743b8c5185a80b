# Sourced by .ci/run when CI=true: a throwaway PostgreSQL on 127.0.0.1 for the PostgreSQL suites.
# Installs Debian's server package if needed, starts a fresh cluster, exports QUARRY_TEST_PG_DSN.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_ROOT="$(mktemp -d /tmp/quarry-pg.XXXXXX)"
PG_PORT="${QUARRY_TEST_PG_PORT:-55432}"
chown postgres "$PG_ROOT"
su postgres -c "$PG_BIN/initdb -D $PG_ROOT/data -A trust -U postgres" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -l $PG_ROOT/server.log -w \
  -o '-p $PG_PORT -k $PG_ROOT -c listen_addresses=127.0.0.1 -c max_connections=200' start" >/dev/null
export QUARRY_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
trap 'su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -m fast stop" >/dev/null 2>&1 || true' EXIT
