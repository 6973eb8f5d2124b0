#!/usr/bin/env bash
# The README's demo: set up .venv, prepare Multi30k En->Fr from ../shared/data, train a small Transformer on CPU,
# score it with sacrebleu on test_2016_flickr, and interpret test sentences with integrated gradients.
# Re-running reuses what is done (prepared data, a finished checkpoint, attributed sentences).
# Environment: DEMO_UPDATES (default 800), DEMO_SENTENCES (default 20), SRC/TGT (default en/fr).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
export PATH="$ROOT/.venv/bin:$PATH" PYTHONWARNINGS=ignore
SRC="${SRC:-en}"; TGT="${TGT:-fr}"
UPDATES="${DEMO_UPDATES:-800}"; SENTENCES="${DEMO_SENTENCES:-20}"
DATA="data/multi30k.$SRC-$TGT"; CKPT="checkpoints/demo.$SRC-$TGT"; OUT="results/demo.$SRC-$TGT"
START=$(date +%s)

echo "| [1/4] preparing Multi30k $SRC-$TGT into $DATA"
python scripts/prepare_data.py --src "$SRC" --tgt "$TGT" --out "$DATA" --vocab-size 8000

echo "| [2/4] training transformer_multi30k for $UPDATES updates on CPU into $CKPT (log: $CKPT/train.log)"
mkdir -p "$CKPT"
T0=$(date +%s)
fairseq-train "$DATA/bin" --user-dir fairseq_interp --arch transformer_multi30k \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 200 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --max-tokens 2048 --max-update "$UPDATES" \
  --cpu --seed 1 --save-dir "$CKPT" --no-epoch-checkpoints --save-interval-updates 200 --keep-interval-updates 1 \
  --validate-interval-updates 200 --log-interval 50 --no-progress-bar > "$CKPT/train.log" 2>&1 \
  || { tail -20 "$CKPT/train.log"; exit 1; }
grep -E "valid on|done training" "$CKPT/train.log" | tail -2 | sed 's/^/|   /'
echo "| training took $(( $(date +%s) - T0 ))s"

echo "| [3/4] translating test_2016_flickr (beam 5) and scoring with sacrebleu"
mkdir -p "$OUT"
fairseq-generate "$DATA/bin" --user-dir fairseq_interp --path "$CKPT/checkpoint_last.pt" --gen-subset test \
  --beam 5 --batch-size 128 --post-process sentencepiece --cpu > "$OUT/generate-test.txt" 2> "$OUT/generate.log" \
  || { tail -20 "$OUT/generate.log"; exit 1; }
python scripts/evaluate_bleu.py --generate-output "$OUT/generate-test.txt" --reference "$DATA/raw/test.$TGT" \
  --lang "$TGT" --hypotheses-out "$OUT/test.hyp.$TGT" | tee "$OUT/bleu.txt" | sed 's/^/|   /'

echo "| [4/4] integrated gradients on the first $SENTENCES test sentences"
RESUME=""; [ -s "$OUT/attributions.jsonl" ] && RESUME="--resume"
fairseq-interpret "$DATA/bin" --user-dir fairseq_interp --path "$CKPT/checkpoint_last.pt" --gen-subset test \
  --beam 5 --batch-size 8 --post-process sentencepiece --cpu --num-sentences "$SENTENCES" \
  --results-path "$OUT" --plot-dir "$OUT/plots" --ig-steps 50 --no-progress-bar $RESUME 2> "$OUT/interpret.log" \
  || { tail -5 "$OUT/interpret.log"; exit 1; }
echo "| first sentence:"
fairseq-interp view "$OUT/attributions.jsonl" --ids 0 2>/dev/null | head -4 | sed 's/^/|   /'
echo "| done in $(( $(date +%s) - START ))s. BLEU: $OUT/bleu.txt; JSONL: $OUT/attributions.jsonl;"
echo "|   text view: $OUT/attributions.txt; heatmaps: $OUT/plots/sentence-<id>.png"
