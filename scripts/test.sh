#!/usr/bin/env bash
# The project's test command (README "Quick start"). Heavy variants are
# opt-in through environment variables; see README.md "Testing".
set -euo pipefail
cd "$(dirname "$0")/.."

# The archive's S3 tests (crates/wal-archive/tests/archive_s3.rs, and the
# `wal archive` commands' in crates/wal-cli) run against a local S3 server:
# moto from PyPI, installed once under the target directory and started on
# a free port for this run (scripts/s3-server.sh), stopped at the end.
# Without it they print "SKIPPED ..."; with WAL_ARCHIVE_REQUIRE_S3 set (as
# .ci/run does) a server that cannot be installed or started fails the run.
s3_dir="${CARGO_TARGET_DIR:-target}/s3-server"
if s3_env=$(bash scripts/s3-server.sh start "$s3_dir"); then
  eval "$s3_env"
  trap 'bash scripts/s3-server.sh stop "$s3_dir"' EXIT
elif [ -n "${WAL_ARCHIVE_REQUIRE_S3:-}" ]; then
  echo "error: WAL_ARCHIVE_REQUIRE_S3 is set and no S3 server could be started (see above)" >&2
  exit 1
else
  echo "WARNING: no S3 server could be started: the archive's S3 tests will be SKIPPED" >&2
fi

cargo test --workspace --all-targets
cargo test --workspace --doc
