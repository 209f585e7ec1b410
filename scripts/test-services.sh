#!/usr/bin/env bash
# Starts PostgreSQL and Redis for the tests if they are not running, and checks they answer.
set -euo pipefail
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  # A cluster that apt just created refuses passwordless TCP logins; on a test machine, trust loopback.
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n1)
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    echo "configuring trust authentication for 127.0.0.1 in $hba (test machine)"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
  fi
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null || { echo "PostgreSQL on 127.0.0.1:5432 does not accept user postgres" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis on 127.0.0.1:6379 does not answer" >&2; exit 1; }
echo "services: PostgreSQL and Redis are up"
