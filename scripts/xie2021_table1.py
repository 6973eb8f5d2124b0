import sys
print("xie2021_table1.py: error: this script moved; run python scripts/reproduce/xie2021/masked_finetuning.py table1 (same options)", file=sys.stderr)
sys.exit(2)
