#!/usr/bin/env bash
# The scheduler soak of SPEC §8/§10 (see benches/soak.rs).
# Usage: benches/soak.sh [seconds] [probes] [interval_s] [slos] [fixture|nginx]
#   benches/soak.sh 180 10000              # SPEC §8: 10,000 probes at 10 s
#   benches/soak.sh 600 50000 30 0 nginx   # SPEC §10: 50,000 probes at 30 s for 10 minutes
#   benches/soak.sh 120 10000 10 1000      # /metrics on a live daemon: 10,000 probes, 1,000 SLOs
#   SOAK_RELOAD=20 benches/soak.sh 180 20000 10 0 nginx   # reloads of 20,000 probes while running
set -euo pipefail
cd "$(dirname "$0")/.."
VANTAGE_SOAK=1 SOAK_SECONDS="${1:-180}" SOAK_PROBES="${2:-10000}" SOAK_INTERVAL="${3:-10}" \
    SOAK_SLOS="${4:-0}" SOAK_TARGET="${5:-fixture}" SOAK_RELOAD="${SOAK_RELOAD:-0}" \
    cargo bench --bench soak
