#!/usr/bin/env bash
# Create .venv at the repository root and install postconv (with its test tools) into it.
#
# Idempotent: a stamp of the inputs (pyproject.toml, constraints.txt, the Python version)
# is kept in .venv; when nothing changed the script returns in well under a second.
# Reaches nothing but the package registries. torch is pinned through constraints.txt.
#
#   bash scripts/setup.sh            # set up (or check) the environment
#   PYTHON=python3.12 bash scripts/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

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
stamp_inputs="$("$python" -c 'import sys; print(sys.version)'; cat pyproject.toml constraints.txt)"
stamp="$(printf '%s' "$stamp_inputs" | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.postconv-setup-stamp"

if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ -x "$venv/bin/postconv" ]; then
    echo "postconv: .venv is up to date ($("$venv/bin/python" --version))"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "postconv: creating .venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel -c constraints.txt
echo "postconv: installing postconv and its dependencies (torch pinned by constraints.txt)"
"$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
echo "$stamp" >"$stamp_file"
echo "postconv: ready: $("$venv/bin/python" -c 'import postconv, torch; print("postconv", postconv.__version__, "| torch", torch.__version__)')"
