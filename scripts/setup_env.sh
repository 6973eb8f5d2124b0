#!/usr/bin/env bash
# Create .venv at the repository root if it is missing or stale, with torch 2.13.0 (CPU) installed first so that
# no later requirement can make pip fetch another torch. Re-running is cheap: a stamp records what was installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.fairseq-interp-installed"
WANT="$(cat "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "| setting up $VENV (torch 2.13.0 CPU, fairseq 0.12 API, captum, ...)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
"${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" \
  || { echo "error: torch 2.13.0 did not install into $VENV"; exit 1; }
"${PIP[@]}" install -e "$ROOT[test]" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" - <<'PY'
import sys, torch
assert torch.__version__.startswith("2.13.0"), f"pip replaced torch: {torch.__version__}"
import fairseq, captum, sacrebleu, fairseq_interp  # noqa: F401
PY
echo "$WANT" > "$STAMP"
echo "| environment ready: $VENV"
