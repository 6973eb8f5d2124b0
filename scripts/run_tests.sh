#!/usr/bin/env bash
# The README's test command: set up .venv if needed, then run pytest over user_dir_tests/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
# headless Chromium (Debian's package) for the browser test of the HTML views; without it that test skips
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "| installing Debian's chromium for the browser test"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } > /tmp/fairseq-interp-chromium.log 2>&1 \
    || echo "| warning: chromium could not be installed (see /tmp/fairseq-interp-chromium.log): the browser test will skip"
fi
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest user_dir_tests "$@"
