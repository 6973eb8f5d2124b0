import sys
print("xie2021_sweep.py: error: this script moved; run python scripts/reproduce/xie2021/masked_finetuning.py sweep (same options)", file=sys.stderr)
sys.exit(2)
