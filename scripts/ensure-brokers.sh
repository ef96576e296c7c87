#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672) answer: start
# whichever is down, installing it from Debian's packages where it is absent.
# The durable combinations' tests need both; they fail rather than skip without.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name port seconds
  for _ in $(seq "$3"); do listening "$2" && return 0; sleep 1; done
  echo "ensure-brokers: $1 is not listening on 127.0.0.1:$2 after $3 s" >&2
  return 1
}

install() { # package...
  command -v apt-get >/dev/null || { echo "ensure-brokers: install $* first" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! listening 6379; then
  command -v redis-server >/dev/null || install redis-server
  echo "ensure-brokers: starting redis-server" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for redis 6379 30
fi

if ! listening 5672; then
  command -v rabbitmq-server >/dev/null || install rabbitmq-server
  echo "ensure-brokers: starting rabbitmq-server" >&2
  rabbitmq-server -detached
  wait_for rabbitmq 5672 120
fi
