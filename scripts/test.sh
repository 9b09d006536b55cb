#!/usr/bin/env bash
# The project's test command (README "Quick start"). Heavy variants are
# opt-in through environment variables; see README.md "Testing".
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
