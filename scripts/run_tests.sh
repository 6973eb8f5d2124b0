#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run pytest over user_dir_tests/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest user_dir_tests "$@"
