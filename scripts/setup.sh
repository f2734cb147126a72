#!/usr/bin/env bash
# Get a machine ready to develop and test imagebuilder: the services the integration tests talk to,
# the local base images and the Python environment. Safe to run again: what is already installed or
# running is left alone, so a second run takes a second or two.
#
#   scripts/setup.sh COMPONENT...
#
#   docker                 dockerd and /usr/bin/docker (Debian docker.io) installed and answering;
#                          with DOCKER_HOST set, only checks that daemon answers
#   redis                  a Redis answering on 127.0.0.1:${REDIS_PORT:-6379}
#   postgres               a throwaway cluster on 127.0.0.1:${PGPORT:-55432} with database
#                          imagebuilder_test, user postgres, trust auth (tests only!)
#   python-deps            .venv with uv, the service editable with [dev], and the client (client/)
#   browser                Debian's chromium, which the dashboard's browser tests drive
#   compose                docker-compose, which validates docker-compose.yml in the tests
#   registry               Debian's docker-registry (a registry v2 server the push tests start)
#   base-images [V...]     scripts/base-images.sh; takes the rest of the arguments (default 3.11)
#   all                    every component above, base images for the default version
#
# State (logs, pid files, the Redis dir and the PostgreSQL cluster) lives in
# ${IMAGEBUILDER_DATA_DIR:-<repo>/data}. Installing needs root and apt-get; otherwise the script
# says what is missing and how to get it, and exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=${IMAGEBUILDER_DATA_DIR:-$ROOT/data}
[[ $DATA_DIR == /* ]] || DATA_DIR="$PWD/$DATA_DIR"
LOG_DIR="$DATA_DIR/logs"
cd "$ROOT"

usage() {
    local status=${1:-2}
    sed -n '/^#   scripts\/setup.sh/,/^#   all/p' "$0" | sed 's/^# \{0,1\}//' >&$((status ? 2 : 1))
    exit "$status"
}

have() {
    command -v "$1" >/dev/null 2>&1
}

is_root() {
    [[ $(id -u) -eq 0 ]]
}

# fail COMPONENT [--log FILE] MESSAGE...: stop and say why; a log's tail shows what went wrong.
fail() {
    local component=$1 log=''
    shift
    if [[ ${1:-} == --log ]]; then
        log=$2
        shift 2
    fi
    echo "$component: $*" >&2
    if [[ -n $log && -s $log ]]; then
        echo "--- last lines of $log" >&2
        tail -n 20 "$log" >&2
    fi
    exit 1
}

# Install Debian packages, or say what is missing and the command that gets it, and stop.
provide() {
    local component=$1 what=$2 log="$LOG_DIR/apt.log" sudo=''
    shift 2
    is_root || sudo='sudo '
    if is_root && have apt-get; then
        mkdir -p "$LOG_DIR"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine (or container) may have no package lists at all; a stale list shows up
        # as a failed install, which one update then fixes.
        if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
            apt-get update -q >>"$log" 2>&1 ||
                fail "$component" --log "$log" "apt-get update failed"
        fi
        if ! apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; then
            if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; } \
                >>"$log" 2>&1; then
                fail "$component" --log "$log" "could not install $*"
            fi
        fi
        return 0
    fi
    {
        echo "$component: missing $what"
        if have apt-get; then
            echo "  install with: ${sudo}apt-get install -y --no-install-recommends $*"
        else
            echo "  install it with your system's package manager (Debian package: $*)"
        fi
    } >&2
    exit 1
}

# Wait up to $1 seconds for the command that follows to succeed.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# --- docker ---------------------------------------------------------------------------------------
# /usr/bin/docker specifically: the BuildKit builds use the 20.10 CLI from docker.io, and a newer
# client elsewhere on PATH may lack the buildx plugin that its `docker build` requires.
DOCKER_CLI=/usr/bin/docker

setup_docker() {
    if [[ -n ${DOCKER_HOST:-} ]]; then
        # Someone else's daemon: nothing to install or start here.
        [[ -x $DOCKER_CLI ]] || provide docker "$DOCKER_CLI (the Docker CLI)" docker.io
        "$DOCKER_CLI" info >/dev/null 2>&1 ||
            fail docker "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'"
        echo "docker: ready ($DOCKER_HOST)"
        return
    fi
    if ! have dockerd || [[ ! -x $DOCKER_CLI ]]; then
        provide docker "dockerd and $DOCKER_CLI" docker.io
    fi
    if ! "$DOCKER_CLI" info >/dev/null 2>&1; then
        start_dockerd
    fi
    echo "docker: ready"
}

start_dockerd() {
    local log="$LOG_DIR/dockerd.log" pid
    if ! is_root; then
        if [[ -S /var/run/docker.sock ]]; then
            fail docker "the daemon does not answer you; join the docker group:" \
                "sudo usermod -aG docker $(id -un) (then log in again)"
        fi
        fail docker "the daemon is not running; start it:" \
            "sudo systemctl start docker (or sudo dockerd)"
    fi
    mkdir -p "$LOG_DIR"
    # A daemon that is still starting has its pid file; a second one would refuse to start.
    if [[ -f /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        :
    elif [[ -d /run/systemd/system ]]; then
        systemctl start docker >>"$log" 2>&1 ||
            fail docker --log "$log" "systemctl start docker failed"
    else
        # No init system (containers, CI sandboxes): run it detached so it outlives this script.
        setsid dockerd >>"$log" 2>&1 </dev/null &
        pid=$!
    fi
    local deadline=$((SECONDS + 30))
    until "$DOCKER_CLI" info >/dev/null 2>&1; do
        if [[ -n ${pid:-} ]] && ! kill -0 "$pid" 2>/dev/null; then
            fail docker --log "$log" "dockerd exited while starting"
        fi
        ((SECONDS < deadline)) || fail docker --log "$log" "dockerd did not answer within 30 s"
        sleep 0.5
    done
}

# --- redis ----------------------------------------------------------------------------------------
# Speaks the protocol through bash's /dev/tcp, so checking needs neither redis-cli nor a server
# installed here: CI may provide Redis as a service container.
redis_ping() {
    local reply
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3
        [[ $reply == +PONG* ]]
    ) 2>/dev/null
}

setup_redis() {
    local port=${REDIS_PORT:-6379} dir="$DATA_DIR/redis"
    if ! redis_ping "$port"; then
        have redis-server || provide redis redis-server redis-server
        mkdir -p "$dir" "$LOG_DIR"
        # A test broker: no snapshots, no append-only file, loopback only.
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
            --pidfile "$dir/redis.pid" --logfile "$LOG_DIR/redis.log" \
            --save '' --appendonly no >/dev/null ||
            fail redis --log "$LOG_DIR/redis.log" "redis-server did not start"
        wait_for 10 redis_ping "$port" ||
            fail redis --log "$LOG_DIR/redis.log" "no answer on 127.0.0.1:$port within 10 s"
    fi
    echo "redis: ready (redis://127.0.0.1:$port/0)"
}

# --- postgres -------------------------------------------------------------------------------------
# Debian keeps initdb and pg_ctl out of PATH, in one directory per major version.
pg_bindir() {
    local dir
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -Vr); do
        [[ -x $dir/initdb ]] && echo "$dir" && return 0
    done
    have initdb && dirname "$(command -v initdb)"
}

# PostgreSQL refuses to run as root; as anyone else it runs as that user.
as_pg() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

setup_postgres() {
    local port=${PGPORT:-55432} cluster="$DATA_DIR/pg" log="$LOG_DIR/postgres.log" bin psql exists
    bin=$(pg_bindir) || {
        provide postgres "the PostgreSQL server (initdb, pg_ctl)" postgresql
        bin=$(pg_bindir) || fail postgres "postgresql is installed but initdb was not found"
    }
    if is_root && ! id -u postgres >/dev/null 2>&1; then
        fail postgres "no postgres user to run the server as; create one: useradd --system postgres"
    fi
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
        mkdir -p "$LOG_DIR"
        # The server writes its own log, so the file must belong to the user it runs as.
        touch "$log"
        if is_root; then
            chown postgres: "$log"
        fi
        if [[ ! -f $cluster/PG_VERSION ]]; then
            mkdir -p "$cluster"
            if is_root; then
                chown postgres: "$cluster"
            fi
            chmod 700 "$cluster"
            as_pg test -w "$cluster" ||
                fail postgres "user postgres cannot write $cluster (a private parent directory?);" \
                    "set IMAGEBUILDER_DATA_DIR to a place it can reach, e.g. /var/tmp/imagebuilder"
            as_pg "$bin/initdb" -D "$cluster" -U postgres -A trust -E UTF8 --no-locale \
                >>"$log" 2>&1 || fail postgres --log "$log" "initdb failed"
            # TCP on loopback only (no socket to clash with a system cluster), and durability
            # traded for speed: this cluster holds nothing but test data.
            cat >>"$cluster/postgresql.conf" <<'EOF'

# imagebuilder test cluster (scripts/setup.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        fi
        as_pg "$bin/pg_ctl" -D "$cluster" -l "$log" -o "-p $port" -w -t 30 start >/dev/null 2>&1 ||
            fail postgres --log "$log" "the cluster in $cluster did not start on port $port"
    fi
    psql=("$bin/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres)
    exists=$("${psql[@]}" -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = 'imagebuilder_test'") ||
        fail postgres "cannot connect to 127.0.0.1:$port as postgres"
    if [[ $exists != 1 ]]; then
        "${psql[@]}" -d postgres -c 'CREATE DATABASE imagebuilder_test' >/dev/null
    fi
    echo "postgres: ready (postgresql://postgres@127.0.0.1:$port/imagebuilder_test)"
}

# --- python-deps ----------------------------------------------------------------------------------
setup_python_deps() {
    local venv="$ROOT/.venv" stamp="$ROOT/.venv/.imagebuilder-deps" log="$LOG_DIR/python-deps.log"
    mkdir -p "$LOG_DIR"
    if [[ ! -x $venv/bin/python ]]; then
        have python3 || provide python-deps python3 python3 python3-venv
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            fail python-deps "$(python3 -V 2>&1) is too old; the project needs Python 3.11+"
        # Debian's python3 without python3-venv leaves a venv without pip behind: remove it, or the
        # next run would take it for a good one.
        if ! python3 -m venv "$venv" >>"$log" 2>&1; then
            rm -rf "$venv"
            provide python-deps "the venv module with ensurepip" python3-venv
            python3 -m venv "$venv" >>"$log" 2>&1 ||
                fail python-deps --log "$log" "python3 -m venv failed"
        fi
    fi
    # A TLS-inspecting proxy is trusted through the system store; pip's and uv's bundled roots
    # would reject it. Callers' own settings win.
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
        export SSL_CERT_FILE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    fi
    if [[ ! -x $venv/bin/uv ]]; then
        "$venv/bin/python" -m pip install -q uv >>"$log" 2>&1 ||
            fail python-deps --log "$log" "pip install uv failed"
    fi
    if [[ ! -f $stamp || pyproject.toml -nt $stamp || client/pyproject.toml -nt $stamp ]]; then
        "$venv/bin/uv" pip install -q --python "$venv/bin/python" -e '.[dev]' -e ./client \
            >>"$log" 2>&1 ||
            fail python-deps --log "$log" "uv pip install -e '.[dev]' -e ./client failed"
        touch "$stamp"
    fi
    echo "python-deps: ready ($("$venv/bin/python" -V))"
}

# --- browser --------------------------------------------------------------------------------------
# Playwright cannot download its own browser here; the tests drive Debian's chromium instead.
setup_browser() {
    have chromium || provide browser "chromium (for the dashboard's browser tests)" chromium
    echo "browser: ready ($(chromium --version 2>/dev/null | head -n 1))"
}

# --- compose --------------------------------------------------------------------------------------
setup_compose() {
    have docker-compose || provide compose "docker-compose (validates docker-compose.yml)" docker-compose
    echo "compose: ready"
}

# --- registry -------------------------------------------------------------------------------------
# Only the binary: each push test starts its own server on a free loopback port (the daemon pushes
# to 127.0.0.0/8 without TLS) and stops it afterwards.
setup_registry() {
    [[ -x /usr/bin/docker-registry ]] ||
        provide registry "docker-registry (the push tests start a registry v2 server)" docker-registry
    echo "registry: ready"
}

# --- base-images ----------------------------------------------------------------------------------
setup_base_images() {
    setup_docker >/dev/null
    # Only root on Debian gets the build tools installed; anyone else hears about them from
    # base-images.sh, and only if an image is actually missing.
    if is_root && have apt-get && { ! have debootstrap || ! have wget ||
        [[ ! -e /usr/share/keyrings/debian-archive-keyring.gpg ]]; }; then
        provide base-images "debootstrap" debootstrap debian-archive-keyring wget
    fi
    IMAGEBUILDER_DOCKER_CLI=${IMAGEBUILDER_DOCKER_CLI:-$DOCKER_CLI} \
        "$ROOT/scripts/base-images.sh" -q "$@"
    echo "base-images: ready (${*:-3.11})"
}

main() {
    local arg
    (($#)) || usage
    # Check every name first: a typo should not surface after minutes of work.
    for arg; do
        case $arg in
            docker | redis | postgres | python-deps | browser | compose | registry | all) ;;
            base-images) break ;;
            -h | --help) usage 0 ;;
            *) echo "setup.sh: unknown component '$arg'" >&2 && usage ;;
        esac
    done
    while (($#)); do
        case $1 in
            docker) setup_docker ;;
            redis) setup_redis ;;
            postgres) setup_postgres ;;
            python-deps) setup_python_deps ;;
            browser) setup_browser ;;
            compose) setup_compose ;;
            registry) setup_registry ;;
            all)
                setup_python_deps
                setup_docker
                setup_redis
                setup_postgres
                setup_base_images
                ;;
            base-images)
                shift
                setup_base_images "$@"
                return
                ;;
        esac
        shift
    done
}

main "$@"
