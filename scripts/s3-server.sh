#!/usr/bin/env bash
# A local S3 server for the archive (crates/wal-archive): moto's server from
# PyPI, with signed requests checked, a user with an access key, and a
# bucket. Needs only Python 3 (and PyPI the first time).
#
#   eval "$(bash scripts/s3-server.sh start DIR)"   # install (once), start, print exports
#   bash scripts/s3-server.sh stop DIR
#
# start installs moto into DIR/venv unless it is there, starts
# `moto_server` on a free port of 127.0.0.1 (log: DIR/server.log), creates
# the user, its key and the bucket `failwal` (scripts/s3-setup.py), writes
# DIR/env and prints it: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, AWS_ENDPOINT_URL, and WAL_ARCHIVE_S3_ENDPOINT and
# WAL_ARCHIVE_S3_BUCKET for the tests. A server already running from DIR
# is reused. moto keeps everything in memory: a restarted server is empty.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

case $cmd in
start)
  if running && [ -f "$dir/env" ]; then
    cat "$dir/env"
    exit 0
  fi
  if [ ! -x "$dir/venv/bin/moto_server" ]; then
    echo "s3-server: installing moto into $dir/venv" >&2
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv" >&2
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*' >&2
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # Requests are authenticated from the 4th on: the first three create the
  # user, its policy and its key (scripts/s3-setup.py).
  INITIAL_NO_AUTH_ACTION_COUNT=3 nohup "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
    >"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  endpoint="http://127.0.0.1:$port"
  if ! "$dir/venv/bin/python" "$here/s3-setup.py" "$endpoint" failwal >"$dir/env.tmp"; then
    echo "s3-server: the server at $endpoint did not come up; its log:" >&2
    cat "$dir/server.log" >&2
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
    exit 1
  fi
  mv "$dir/env.tmp" "$dir/env"
  echo "s3-server: moto at $endpoint (pid $(cat "$dir/pid")), bucket failwal" >&2
  cat "$dir/env"
  ;;
stop)
  if running; then
    kill "$(cat "$dir/pid")"
    echo "s3-server: stopped" >&2
  fi
  rm -f "$dir/pid" "$dir/env"
  ;;
*) usage ;;
esac
