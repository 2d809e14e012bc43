#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for shared Optuna studies (tests, CI, a laptop).
#
#   scripts/postgres.sh start [DIR]   install Debian's postgresql if missing, initialise a
#                                     cluster in DIR, start it on 127.0.0.1 on a free port,
#                                     create a database; prints its URL (also in DIR/url)
#   scripts/postgres.sh url   [DIR]   print the URL of the server running in DIR
#   scripts/postgres.sh stop  [DIR]   stop it (add --purge to delete DIR as well)
#
# DIR defaults to $QCRL_PG_DIR or /tmp/qcrl-postgres; its parents must be readable by the
# server's user. PostgreSQL refuses to run as root: as root, the server runs as the
# `postgres` user (created by the Debian package). Starting twice prints the same URL.
set -euo pipefail

cmd=${1:-}
dir=${2:-${QCRL_PG_DIR:-/tmp/qcrl-postgres}}
purge=${3:-}
db_user=qcrl
db_name=qcrl

die() { echo "postgres.sh: $*" >&2; exit 2; }

pg_bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $found && -x $found/initdb ]] && { echo "$found"; return; }
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
    return 1
}

install_postgres() {
    echo "postgres.sh: installing Debian's postgresql package" >&2
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "PostgreSQL is not installed and this user cannot install it (no root, no sudo)"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
}

# Run a command as the server's user: postgres when we are root, else ourselves.
as_server() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() { [[ -f $dir/data/postmaster.pid ]] && as_server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case $cmd in
    start|stop|url) ;;
    *) die "usage: scripts/postgres.sh start|url|stop [DIR] [--purge]" ;;
esac

bin=$(pg_bindir || true)
if [[ -z $bin ]]; then
    [[ $cmd == start ]] || die "PostgreSQL is not installed"
    install_postgres
    bin=$(pg_bindir) || die "the postgresql package did not provide initdb"
fi

if [[ $cmd == url ]]; then
    running || die "no server running in $dir (start one: scripts/postgres.sh start $dir)"
    cat "$dir/url"
    exit 0
fi

if [[ $cmd == stop ]]; then
    if running; then
        as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
        echo "postgres.sh: stopped the server in $dir" >&2
    fi
    if [[ $purge == --purge ]]; then rm -rf "$dir"; fi
    exit 0
fi

# start
if running; then
    cat "$dir/url"
    exit 0
fi
mkdir -p "$dir"
chmod 700 "$dir"
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (reinstall the postgresql package)"
    chown postgres: "$dir"
fi
as_server test -w "$dir" || die "$dir is not writable by the server's user (are its parents readable?)"

if [[ ! -f $dir/data/PG_VERSION ]]; then
    rm -rf "$dir/data"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    umask 077
    printf '%s\n' "$password" > "$dir/password"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/password"
    as_server "$bin/initdb" -D "$dir/data" -U "$db_user" --pwfile="$dir/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 \
        || die "initdb failed (see $dir/initdb.log)"
fi
password=$(cat "$dir/password")
port=$(free_port)
as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
    || die "the server did not start (see $dir/server.log)"
if ! as_server "$bin/psql" -h "$dir" -p "$port" -U "$db_user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
    as_server "$bin/createdb" -h "$dir" -p "$port" -U "$db_user" "$db_name"
fi
url="postgresql://$db_user:$password@127.0.0.1:$port/$db_name"
printf '%s\n' "$url" > "$dir/url"
[[ $(id -u) -eq 0 ]] && chown postgres: "$dir/url"
echo "$url"
