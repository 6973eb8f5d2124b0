import sys
print("multihead_init.py: error: this script moved; run python scripts/reproduce/snell2021/permutation_copy.py multihead-init (same options)", file=sys.stderr)
sys.exit(2)
