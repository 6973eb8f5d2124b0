import sys
print("alignment_aer.py: error: this script moved; run fairseq-interp aer (same options)", file=sys.stderr)
sys.exit(2)
