#!/usr/bin/env python
"""Prepare SST-2 for fairseq's ``sentence_prediction`` layout (Snell et al. 2021's classification half).

Reads ``../shared/data/sst2/{train,dev,test}.tsv.gz`` (GLUE SST-2 phrases, lowercased and tokenized; header
``sentence<TAB>label``) and writes

    OUT/text/{train,valid,test}.input0      one tokenized sentence per line (the words the probes score)
    OUT/text/{train,valid,test}.label       0 (negative) or 1 (positive)
    OUT/bin/input0/, OUT/bin/label/         fairseq-preprocess output (``--task sentence_prediction`` reads it)
    OUT/prepare.json                        the options and counts; a second run with the same options is a no-op

Splits: train ← train.tsv, valid ← dev.tsv, test ← test.tsv (GLUE's original dev set, 872 whole sentences).

Rows (``--rows``): the train and dev files hold every phrase of the treebank as well as whole sentences. With
``sentences`` (the default) only whole-sentence rows are kept: the rows of train ∪ dev that are a contiguous word
span of no other row (a phrase is always inside its sentence); ``all`` keeps every phrase. The test file is whole
sentences already and is kept whole.

Vocabulary: word level, built on the kept training rows; words seen fewer than ``--min-count`` (3) times there
become ``<unk>`` (appendix A.8: "We mapped all words occurring less than 3 times in the training set to <unk>").
The label dictionary is fixed to ``0`` then ``1``, so the class index is the label.

Example::

    python scripts/prepare_sst2.py --out data/sst2
"""

import argparse
import gzip
import json
import os
import shutil

from fairseq_interp.common.errors import InterpretError as PrepareError  # one line on stderr, exit code 2
from fairseq_interp.common.options import check_range
from fairseq_interp.common.preparation import (add_overwrite_option, already_prepared, preparation_main,
                                                run_preprocess, write_lines)

COMMAND = "prepare_sst2.py"

SPLITS = {"train": "train", "valid": "dev", "test": "test"}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_ROOT = os.path.join(REPO_ROOT, "..", "shared", "data", "sst2")


def read_rows(path):
    """[(words, label)] of one SST-2 file; a malformed line is an error naming it."""
    if not os.path.exists(path):
        raise PrepareError(f"missing corpus file {path}: pass --data-root pointing at the sst2 folder")
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["sentence", "label"]:
            raise PrepareError(f"{path}: header {header} is not sentence<TAB>label")
        for number, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or parts[1] not in ("0", "1"):
                raise PrepareError(f"{path}:{number}: expected 'sentence<TAB>0|1', got {line.strip()[:60]!r}")
            words = parts[0].split()
            if words:
                rows.append((words, int(parts[1])))
    return rows


def whole_sentences(rows):
    """The rows that are a contiguous word span of no other row: the treebank's whole sentences."""
    texts = {" ".join(words) for words, _ in rows}
    inside = set()
    for words, _ in rows:
        n = len(words)
        for start in range(n):
            for end in range(start + 1, n + 1):
                if end - start < n:
                    span = " ".join(words[start:end])
                    if span in texts:
                        inside.add(span)
    return [row for row in rows if " ".join(row[0]) not in inside]


def prepare(args):
    check_range(args.min_count, "--min-count", 1, what="1 keeps every training word")
    check_range(args.train_size, "--train-size", 0, what="0 = all")
    out = os.path.abspath(args.out)
    stamp_path = os.path.join(out, "prepare.json")
    options = {"rows": args.rows, "min_count": args.min_count, "train_size": args.train_size,
               "data_root": os.path.abspath(args.data_root)}
    if already_prepared(out, stamp_path, options, args.overwrite, stamp_options=lambda stamp: stamp["options"]):
        return out

    rows = {split: read_rows(os.path.join(args.data_root, f"{name}.tsv.gz")) for split, name in SPLITS.items()}
    counts = {f"{split}_rows_read": len(r) for split, r in rows.items()}
    if args.rows == "sentences":
        kept = {id(row) for row in whole_sentences(rows["train"] + rows["valid"])}
        for split in ("train", "valid"):
            rows[split] = [row for row in rows[split] if id(row) in kept]
    if args.train_size:
        rows["train"] = rows["train"][:args.train_size]
    text_dir = os.path.join(out, "text")
    os.makedirs(text_dir, exist_ok=True)
    for split, split_rows in rows.items():
        write_lines(os.path.join(text_dir, f"{split}.input0"), [" ".join(w) for w, _ in split_rows])
        write_lines(os.path.join(text_dir, f"{split}.label"), [str(y) for _, y in split_rows])
        counts[f"{split}_rows_kept"] = len(split_rows)
        print(f"| {split}: {len(split_rows)} rows kept of {counts[f'{split}_rows_read']} "
              f"({100.0 * sum(y for _, y in split_rows) / max(1, len(split_rows)):.1f}% positive)")

    bin_dir = os.path.join(out, "bin")
    if os.path.isdir(bin_dir):  # a preparation redone (--overwrite): fairseq-preprocess refuses existing files
        shutil.rmtree(bin_dir)
    prefixes = ["--trainpref", f"{text_dir}/train", "--validpref", f"{text_dir}/valid", "--testpref",
                f"{text_dir}/test"]
    run_preprocess(["--only-source", "--destdir", os.path.join(bin_dir, "input0"), "--thresholdsrc",
                    str(args.min_count), "--workers", "1",
                    *[p + ".input0" if p.startswith(text_dir) else p for p in prefixes]])
    label_dict = os.path.join(out, "label.dict.txt")
    write_lines(label_dict, ["0 1", "1 1"])  # fixed order: class index = label
    run_preprocess(["--only-source", "--destdir", os.path.join(bin_dir, "label"), "--srcdict", label_dict,
                    "--workers", "1", *[p + ".label" if p.startswith(text_dir) else p for p in prefixes]])
    with open(os.path.join(bin_dir, "input0", "dict.txt"), encoding="utf-8") as f:
        counts["vocabulary_words"] = sum(1 for _ in f)
    with open(stamp_path + ".tmp", "w") as f:
        json.dump({"options": options, "counts": counts}, f, indent=1)
    os.replace(stamp_path + ".tmp", stamp_path)
    print(f"| prepared SST-2 ({args.rows}) in {out}: {counts['vocabulary_words']} words seen >= {args.min_count} "
          f"times in training (binarized data: {bin_dir})")
    return out


def get_parser():
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (required)")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                   help="folder with SST-2's gzip TSV files (default: %(default)s)")
    p.add_argument("--rows", choices=["sentences", "all"], default="sentences",
                   help="keep whole-sentence rows or every phrase row of train and dev (default: %(default)s)")
    p.add_argument("--min-count", type=int, default=3,
                   help="words seen fewer times in training become <unk> (appendix A.8: 3; default: %(default)s)")
    p.add_argument("--train-size", type=int, default=0,
                   help="keep only the first N training rows (0 = all; default: %(default)s)")
    add_overwrite_option(p)
    return p


def main(argv=None):
    preparation_main(COMMAND, get_parser(), prepare, argv)


if __name__ == "__main__":
    main()
