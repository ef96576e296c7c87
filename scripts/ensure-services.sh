#!/usr/bin/env bash
# Make sure the services the tests talk to answer on 127.0.0.1: Redis (6379),
# RabbitMQ (5672) and PostgreSQL (5432, trust auth for role postgres, database
# `test`). Start whichever is down, installing it from Debian's packages where it
# is absent. Never skips: exits non-zero when a service cannot be brought up.
#
#   scripts/ensure-services.sh                     all three
#   scripts/ensure-services.sh redis postgres      only those named
#   scripts/ensure-services.sh wrk                 the bench's load generator
#   scripts/ensure-services.sh promtool            Prometheus' metrics linter
#
# In CI the services are containers already listening; nothing is started then.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name port seconds
  for _ in $(seq "$3"); do listening "$2" && return 0; sleep 1; done
  echo "ensure-services: $1 is not listening on 127.0.0.1:$2 after $3 s" >&2
  return 1
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

updated=
install() { # package...
  command -v apt-get >/dev/null || { echo "ensure-services: install $* first" >&2; exit 1; }
  [ -n "$updated" ] || { as_root apt-get update -qq; updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_without_starting() { # package...
  # Debian's invoke-rc.d asks policy-rc.d; 101 means "do not start services".
  local policy=/usr/sbin/policy-rc.d
  if [ -e "$policy" ]; then install "$@"; return; fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod +x "$policy"
  install "$@" || { as_root rm -f "$policy"; return 1; }
  as_root rm -f "$policy"
}

ensure_redis() {
  # The chaos tests start private redis-servers: the binary is needed even when
  # Redis already listens (a container in CI). Installed without starting it.
  command -v redis-server >/dev/null || install_without_starting redis-server
  listening 6379 && return
  echo "ensure-services: starting redis-server" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for redis 6379 30
}

ensure_rabbitmq() {
  listening 5672 && return
  command -v rabbitmq-server >/dev/null || install rabbitmq-server
  echo "ensure-services: starting rabbitmq-server" >&2
  rabbitmq-server -detached
  wait_for rabbitmq 5672 120
}

# What the tests connect as: role postgres, no password, database test.
postgres_ready() { psql -h 127.0.0.1 -p 5432 -U postgres -d test -w -Atqc 'select 1' >/dev/null 2>&1; }

as_postgres() { as_root runuser -u postgres -- "$@"; }

ensure_postgres() {
  if ! listening 5432; then
    command -v pg_ctlcluster >/dev/null || install postgresql
    if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then  # installed, but no cluster
      version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
      as_root pg_createcluster "$version" main >/dev/null
    fi
    echo "ensure-services: starting postgresql" >&2
    pg_lsclusters -h | while read -r version cluster _; do
      as_root pg_ctlcluster "$version" "$cluster" start || true
    done
    wait_for postgresql 5432 60
  fi
  command -v psql >/dev/null || install postgresql-client
  postgres_ready && return
  # Our own cluster (a container would already be set up): trust local TCP
  # connections, then create what is missing. The postgres role always exists.
  echo "ensure-services: configuring postgresql (trust on 127.0.0.1, database test)" >&2
  for hba in $(as_postgres psql -Atqc 'show hba_file'); do
    grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba" ||
      as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  done
  as_postgres psql -Atqc 'select pg_reload_conf()' >/dev/null
  as_postgres psql -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
    as_postgres createdb test
  postgres_ready || {
    echo "ensure-services: cannot connect as postgres to database test on 127.0.0.1:5432" >&2
    return 1
  }
}

# Not a service: the benchmarks' throughput client (scenario 4 needs it).
ensure_wrk() {
  command -v wrk >/dev/null || install wrk
}

# Not a service: Prometheus' linter, which every rendered project's tests run
# over its /metrics. Debian ships it only inside the prometheus package, whose
# install would add a user, web assets and a Prometheus server it starts: the
# one binary is taken out of the package instead (a static Go program).
ensure_promtool() {
  command -v promtool >/dev/null && return
  command -v apt-get >/dev/null || { echo "ensure-services: install promtool first" >&2; exit 1; }
  [ -n "$updated" ] || { as_root apt-get update -qq; updated=1; }
  local dir
  dir=$(mktemp -d)
  # As this user: root's apt would hand the download to _apt, who cannot write here.
  (cd "$dir" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus)
  dpkg-deb --fsys-tarfile "$dir"/prometheus_*.deb |
    as_root tar -x -C /usr/local/bin --strip-components=3 ./usr/bin/promtool
  rm -rf "$dir"
  promtool --version >/dev/null
}

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(redis rabbitmq postgres)
for service in "${services[@]}"; do
  case $service in
    redis | rabbitmq | postgres | wrk | promtool) "ensure_$service" ;;
    *) echo "ensure-services: unknown service $service (redis, rabbitmq, postgres, wrk, promtool)" >&2; exit 2 ;;
  esac
done
