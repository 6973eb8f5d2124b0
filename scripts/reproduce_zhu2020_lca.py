import sys
print("reproduce_zhu2020_lca.py: error: this script moved; run python scripts/reproduce/zhu2020/lca_approximation.py (same options)", file=sys.stderr)
sys.exit(2)
