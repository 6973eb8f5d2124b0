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
LOG="$(mktemp)"
step() {  # run quietly; on failure show the log and stop
  "$@" >> "$LOG" 2>&1 || { grep -v "^WARNING: Location" "$LOG" | tail -40; echo "error: setup failed: $*"; exit 1; }
}
echo "| setting up $VENV (torch 2.13.0 CPU first, then fairseq 0.12 API, captum, sacrebleu, ...)"
[ -x "$VENV/bin/python" ] || step "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
step "${PIP[@]}" install --upgrade pip setuptools wheel
step "${PIP[@]}" install "torch==2.13.0"
step "${PIP[@]}" install -e "$ROOT[test]"
step "$VENV/bin/python" -c "
import torch
assert torch.__version__.startswith('2.13.0'), 'pip replaced torch: ' + torch.__version__
import fairseq, captum, sacrebleu, fairseq_interp"
rm -f "$LOG"
echo "$WANT" > "$STAMP"
echo "| environment ready: $VENV"
