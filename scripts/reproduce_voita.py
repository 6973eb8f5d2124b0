import sys
print("reproduce_voita.py: error: this script moved; run python scripts/reproduce/voita2019/prune_sweep.py (same options)", file=sys.stderr)
sys.exit(2)
