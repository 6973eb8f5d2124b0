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
# two workers (pytest-xdist, one file per worker at a time; shared fixtures are built once): PYTEST_WORKERS=0 runs
# everything in this process
WORKERS=(-n "${PYTEST_WORKERS:-2}" --dist loadfile)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one thread per worker
[ "${PYTEST_WORKERS:-2}" = 0 ] && WORKERS=(-p no:xdist)
# a test still running after PYTEST_TIMEOUT seconds (default 900; the longest takes under a minute) fails with every
# thread's stack (pytest-timeout) instead of holding the run until CI's limit
TIMEOUT=(--timeout "${PYTEST_TIMEOUT:-900}" --timeout-method thread)
exec "$ROOT/.venv/bin/python" -m pytest user_dir_tests "${WORKERS[@]}" "${TIMEOUT[@]}" "$@"
