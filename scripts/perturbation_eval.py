import sys
print("perturbation_eval.py: error: this script moved; run fairseq-interp perturbation (same options)", file=sys.stderr)
sys.exit(2)
