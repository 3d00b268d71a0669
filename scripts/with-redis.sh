#!/usr/bin/env bash
# Runs a command with a private Redis server for the scale-out tests: installs Debian's redis-server
# when it is missing, starts it on a free local port (no persistence, in a temporary directory),
# exports SEAL_TEST_REDIS=redis://127.0.0.1:PORT, runs the command, and stops the server afterwards,
# whatever the command's outcome. Usage: bash scripts/with-redis.sh npm test
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null; then
  echo "with-redis: installing redis-server (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  # apt may be busy (another installer): wait for its lock rather than fail.
  $SUDO apt-get -o DPkg::Lock::Timeout=120 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=120 install -y -qq redis-server >/dev/null
fi

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
tmp=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --daemonize yes --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
stop() {
  [ -f "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap stop EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "with-redis: redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$port"
export SEAL_TEST_REDIS="redis://127.0.0.1:$port"
"$@"
