# Sourced by .ci/run: a throw-away PostgreSQL server on 127.0.0.1:$PGPORT, from Debian's package.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user the package creates.
PGPORT=${PGPORT:-54329}
PGDATA_CI=""

_pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
    if [ -z "$(_pg_bin)" ]; then
        echo "installing PostgreSQL (Debian package)"
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    fi
    local bin
    bin=$(_pg_bin)
    PGDATA_CI=$(mktemp -d /tmp/llara-ci-pg.XXXXXX)
    local run=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$PGDATA_CI"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$PGDATA_CI/data" -A trust -U postgres -E UTF8 >/dev/null
    "${run[@]}" "$bin/pg_ctl" -D "$PGDATA_CI/data" -l "$PGDATA_CI/server.log" -w start \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA_CI" >/dev/null
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT"
}

stop_postgres() {
    [ -n "$PGDATA_CI" ] || return 0
    local run=()
    [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$(_pg_bin)/pg_ctl" -D "$PGDATA_CI/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA_CI"
}
