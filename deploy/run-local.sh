#!/usr/bin/env bash
# Try several nodes on one machine: Redis, PostgreSQL, two chat_server nodes and nginx in
# front, all on loopback; http://localhost:8000 is nginx. Ctrl+C stops everything.
# Needs: make setup (or the Debian packages redis-server, postgresql, nginx) and root or
# sudo for the PostgreSQL cluster (it runs as the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test >/dev/null
.venv/bin/python -m pip install -q -e ".[scale]"

work=$(mktemp -d /tmp/chat-cluster-XXXX)
chmod 755 "$work"
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap stop EXIT INT TERM

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 & pids+=($!)

pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/pg" && [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -A trust -U chat >/dev/null
as_pg "$pgbin/postgres" -D "$work/pg/data" -p 5440 -k "$work/pg" \
  -c listen_addresses=127.0.0.1 >"$work/pg.log" 2>&1 & pids+=($!)
until "$pgbin/psql" -h 127.0.0.1 -p 5440 -U chat -d postgres -c "SELECT 1" >/dev/null 2>&1; do
  sleep 0.2
done
"$pgbin/psql" -h 127.0.0.1 -p 5440 -U chat -d postgres -c "CREATE DATABASE chat" >/dev/null

export DATABASE_URL=postgresql://chat@127.0.0.1:5440/chat REDIS_URL=redis://127.0.0.1:6390/0
# nginx (on this machine) forwards the client's address: believe it, or every user shares
# nginx's address and its per-address budgets.
export TRUSTED_PROXIES=127.0.0.1
NODE_NAME=node1 .venv/bin/python -m chat_server --host 127.0.0.1 --port 8001 & pids+=($!)
NODE_NAME=node2 .venv/bin/python -m chat_server --host 127.0.0.1 --port 8002 & pids+=($!)

mkdir -p /tmp/chat-nginx
nginx -c "$PWD/deploy/nginx.conf" -p /tmp/chat-nginx & pids+=($!)
echo "chat cluster: http://localhost:8000 (nginx) -> nodes :8001 and :8002; Ctrl+C stops it"
wait
