#!/usr/bin/env bash
# Set up .venv (quick when nothing changed), then lint and run the test suite.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k bootstrap   # extra arguments go to pytest
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# torch is ~100x slower on small ops with 2 threads on these CPUs
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
