import sys
print("figure3.py: error: this script moved; run python scripts/reproduce/snell2021/permutation_copy.py figure3 (same options)", file=sys.stderr)
sys.exit(2)
