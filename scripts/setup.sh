#!/usr/bin/env bash
# Create .venv at the repository root and install postconv, its test tools, Ray and the Isaac
# Lab 3.0 stack (Newton physics, rsl_rl) into it.
#
# Idempotent: a stamp of the inputs (pyproject.toml, constraints.txt, requirements/, the
# Python version, the options) is kept in .venv; when nothing changed the script returns in
# well under a second. Reaches nothing but the package registries.
#
#   bash scripts/setup.sh                    # everything
#   bash scripts/setup.sh --selection-only   # postconv.selection and the CLI, no simulator
#   PYTHON=python3.12 bash scripts/setup.sh
#
# Python 3.12 installs Isaac Lab the normal way (pip resolves its dependencies; torch 2.11,
# CUDA build). Python 3.11 cannot (Isaac Lab 3.0 declares 3.12): the runtime dependencies
# that kit-less Newton needs come from requirements/isaaclab-py311.txt, then isaaclab itself
# with --no-deps --ignore-requires-python, beside torch 2.13.0 (CPU).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
with_sim=1
for arg in "$@"; do
    case "$arg" in
        --selection-only) with_sim=0 ;;
        *) echo "unknown option $arg (known: --selection-only)" >&2; exit 2 ;;
    esac
done

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
    for candidate in python3.11 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
            echo "$candidate"; return
        fi
    done
    echo "postconv needs Python 3.11 or 3.12; none found on PATH (set PYTHON=/path/to/python)." >&2
    exit 1
}

python="$(pick_python)"
minor="$("$python" -c 'import sys; print(sys.version_info[1])')"
stamp="$({ "$python" -c 'import sys; print(sys.version)'; echo "sim=$with_sim"; cat pyproject.toml constraints.txt requirements/*.txt; } | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.postconv-setup-stamp"

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ -x "$venv/bin/postconv" ]; then
    echo "postconv: .venv is up to date ($("$venv/bin/python" --version))"
    exit 0
fi

if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version_info[1])')" != "$minor" ]; then
    echo "postconv: .venv holds another Python than $("$python" --version); recreating it"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "postconv: creating .venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt)
# setuptools prints an information note on every editable install (a folder named like the
# package in the working directory could shadow it; this layout has none). Real packaging
# warnings still show: tests/test_packaging.py keeps the build free of them.
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation"

"${pip[@]}" --upgrade pip setuptools wheel
if [ "$with_sim" = 0 ]; then
    echo "postconv: installing postconv (selection only)"
    "${pip[@]}" -e ".[dev]"
elif [ "$minor" -ge 12 ]; then
    echo "postconv: installing postconv with Isaac Lab 3.0 (Python 3.$minor: normal dependency resolution)"
    "${pip[@]}" -e ".[dev,sim,ray]"
else
    echo "postconv: installing postconv, then Isaac Lab 3.0 without dependency resolution (Python 3.$minor)"
    "${pip[@]}" -e ".[dev,ray]" -r requirements/isaaclab-py311.txt
    "${pip[@]}" --no-deps --ignore-requires-python isaaclab==3.0.0
fi
echo "$stamp" >"$stamp_file"
"$venv/bin/python" - <<'PY'
import importlib.util

import torch

import postconv

sim = "Isaac Lab 3.0 + Newton" if importlib.util.find_spec("isaaclab") else "no simulator"
print(f"postconv: ready: postconv {postconv.__version__} | torch {torch.__version__} | {sim}")
PY
