#!/usr/bin/env bash
# Installs the external load generator of `cargo bench --bench external`: Debian's
# wrk (4.1). Does nothing when wrk is already on the PATH.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends wrk || {
  apt-get update
  apt-get install -y --no-install-recommends wrk
}
