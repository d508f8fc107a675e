#!/usr/bin/env bash
# The 10,000-probe scheduler soak of SPEC §8. Usage: benches/soak.sh [seconds] [probes]
set -euo pipefail
cd "$(dirname "$0")/.."
VANTAGE_SOAK=1 SOAK_SECONDS="${1:-180}" SOAK_PROBES="${2:-10000}" cargo bench --bench soak
