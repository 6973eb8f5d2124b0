#!/usr/bin/env python
"""Prepare Multi30k for fairseq: Moses tokenization, a joint sentencepiece model, fairseq-preprocess.

Reads the raw gzip files of ``../shared/data/multi30k`` (train / val / test_2016_flickr), writes

    OUT/raw/{train,valid,test}.{lang}        raw text (the subset actually used; references for BLEU)
    OUT/tok/{train,valid,test}.{lang}        Moses-tokenized text (the "words" of attribution)
    OUT/spm/{train,valid,test}.{lang}        sentencepiece pieces
    OUT/spm.model, OUT/spm.vocab             the joint sentencepiece model
    OUT/bin/                                 fairseq-preprocess output (joined dictionary)
    OUT/prepare.json                         the options used; a second run with the same options is a no-op;
                                             bin_sha256: the binarized data's fingerprint (same data to the byte)

Everything is built in a temporary folder beside OUT and renamed to OUT at the end, so a failed or interrupted run
leaves OUT as it was. OUT prepared with other options is replaced only with ``--overwrite``, and a folder holding
files this script does not write is never replaced.

Many-to-many mode (``--lang-pairs``, Xie et al. 2021 / Johnson et al. 2017): one joint sentencepiece model over
all languages of the directions and one shared dictionary; ``OUT/bin`` is laid out as fairseq's
``translation_multi_simple_epoch`` reads it: ``{split}.{a}-{b}.{a|b}.{bin,idx}`` once per unordered language
pair (a reversed direction reads the same files) and ``dict.{lang}.txt`` for every language, all identical.
Multi30k is aligned across languages, so every language keeps the same sentences.

Example::

    python scripts/prepare_data.py --src en --tgt fr --out data/multi30k.en-fr
    python scripts/prepare_data.py --src en --tgt de --train-size 10000 --out data/m30k-10k.en-de
    python scripts/prepare_data.py --lang-pairs xie2021 --out data/multi30k.m2m   # the 8 directions below
"""

import argparse
import gzip
import json
import os
import shutil

from fairseq_interp.common.errors import InterpretError as PrepareError  # one line on stderr, exit code 2
from fairseq_interp.common.preparation import (FINGERPRINT_KEY, add_overwrite_option, already_prepared,
                                                binarized_fingerprint, preparation_main, run_preprocess, write_lines)

LANGS = ("en", "de", "fr", "cs")
SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
# the 8 many-to-many directions of our Table-1 reproduction (Xie et al. 2021 on Multi30k)
XIE2021_PAIRS = ("en-de", "de-en", "en-fr", "fr-en", "en-cs", "cs-en", "de-fr", "fr-de")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_ROOT = os.path.join(REPO_ROOT, "..", "shared", "data", "multi30k")


COMMAND = "prepare_data.py"
#: what an OUT folder of this script holds (anything else there is not ours to replace)
OUTPUTS = {"raw", "tok", "spm", "bin", "dict", "spm.model", "spm.vocab", "prepare.json"}


def read_split(data_root, split, lang, limit):
    path = os.path.join(data_root, f"{SPLITS[split]}.{lang}.gz")
    if not os.path.exists(path):
        raise PrepareError(f"missing corpus file {path}: pass --data-root pointing at the multi30k folder")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit else lines


def moses_tokenize(lines, lang):
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    norm = MosesPunctNormalizer(lang=lang)
    tok = MosesTokenizer(lang=lang)
    return [tok.tokenize(norm.normalize(line), escape=False, return_str=True) for line in lines]


def train_sentencepiece(text_files, prefix, vocab_size, seed_sentences):
    import sentencepiece as spm

    try:
        _train_sentencepiece(spm, text_files, prefix, vocab_size, seed_sentences)
    except RuntimeError as e:
        raise PrepareError(f"sentencepiece cannot train {vocab_size} pieces on this text ({str(e).strip()}): pass a "
                           "smaller --vocab-size or a larger --train-size") from None


def _train_sentencepiece(spm, text_files, prefix, vocab_size, seed_sentences):
    spm.SentencePieceTrainer.train(
        input=",".join(text_files),
        model_prefix=prefix,
        vocab_size=vocab_size,
        character_coverage=1.0,
        model_type="unigram",
        input_sentence_size=seed_sentences,
        shuffle_input_sentence=True,
        # fairseq builds its own dictionary; keep sentencepiece's specials out of the pieces
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )


def parse_lang_pairs(value):
    """``en-de,de-en`` (or ``xie2021``) -> directions and their languages; checks every language is in Multi30k."""
    pairs = list(XIE2021_PAIRS) if value == "xie2021" else [p.strip() for p in value.split(",") if p.strip()]
    for pair in pairs:
        src, sep, tgt = pair.partition("-")
        if not sep or src == tgt or src not in LANGS or tgt not in LANGS:
            raise PrepareError(f"--lang-pairs: {pair!r} is not SRC-TGT with two different languages among "
                               f"{', '.join(LANGS)}")
    if len(set(pairs)) != len(pairs) or not pairs:
        raise PrepareError("--lang-pairs must list each direction once, e.g. en-de,de-en")
    langs = sorted({lang for pair in pairs for lang in pair.split("-")})
    return pairs, langs


def binarize_bilingual(out, src, tgt, workers):
    prefix = os.path.join(out, "spm")
    run_preprocess([
        "--source-lang", src, "--target-lang", tgt,
        "--trainpref", f"{prefix}/train", "--validpref", f"{prefix}/valid", "--testpref", f"{prefix}/test",
        "--destdir", os.path.join(out, "bin"), "--joined-dictionary", "--workers", str(workers)])


def binarize_multilingual(out, pairs, langs, workers):
    """One dictionary over every language's training pieces, then each unordered pair binarized with it."""
    prefix, bin_dir = os.path.join(out, "spm"), os.path.join(out, "bin")
    joint = os.path.join(out, "spm", "train.all")
    with open(joint, "w", encoding="utf-8") as f:
        for lang in langs:
            with open(f"{prefix}/train.{lang}", encoding="utf-8") as part:
                f.write(part.read())
    dict_dir = os.path.join(out, "dict")
    run_preprocess(["--only-source", "--trainpref", joint, "--destdir", dict_dir, "--dict-only",
                    "--workers", str(workers)])
    shared = os.path.join(dict_dir, "dict.txt")
    for src, tgt in sorted({tuple(sorted(p.split("-"))) for p in pairs}):
        run_preprocess([
            "--source-lang", src, "--target-lang", tgt, "--srcdict", shared, "--tgtdict", shared,
            "--trainpref", f"{prefix}/train", "--validpref", f"{prefix}/valid", "--testpref", f"{prefix}/test",
            "--destdir", bin_dir, "--workers", str(workers)])
    os.remove(joint)
    write_lines(os.path.join(bin_dir, "lang_pairs.txt"), [",".join(pairs)])
    write_lines(os.path.join(bin_dir, "langs.txt"), [",".join(langs)])


def check_options(args):
    """Everything that can be refused before any work: sizes, languages, corpus files, the output folder."""
    for option, value, minimum in (("--train-size", args.train_size, 0), ("--valid-size", args.valid_size, 0),
                                   ("--test-size", args.test_size, 0), ("--vocab-size", args.vocab_size, 8),
                                   ("--workers", args.workers, 1)):
        if value < minimum:
            raise PrepareError(f"{option} {value} is out of range: pass a value >= {minimum}"
                               + (" (0 = all)" if option.endswith("-size") and minimum == 0 else ""))
    if args.lang_pairs:
        pairs, langs = parse_lang_pairs(args.lang_pairs)
    elif args.src == args.tgt or args.src not in LANGS or args.tgt not in LANGS:
        raise PrepareError(f"--src/--tgt must be two different languages among {', '.join(LANGS)}")
    else:
        pairs, langs = None, [args.src, args.tgt]
    if not os.path.isdir(args.data_root):
        raise PrepareError(f"--data-root {args.data_root} is not a folder: pass the multi30k folder with the raw "
                           "gzip files")
    for split in SPLITS:
        for lang in langs:
            path = os.path.join(args.data_root, f"{SPLITS[split]}.{lang}.gz")
            if not os.path.isfile(path):
                raise PrepareError(f"missing corpus file {path}: pass --data-root pointing at the multi30k folder")
    return pairs, langs


def check_out(out, overwrite):
    """Refuse an --out that is a file, or a folder with files this script does not write; a prepared folder is
    replaced only with --overwrite (checked by the caller against prepare.json)."""
    from fairseq_interp.common.outputs import check_output_folder

    check_output_folder(out, "--out")
    if os.path.isdir(out):
        foreign = sorted(set(os.listdir(out)) - OUTPUTS)
        if foreign:
            raise PrepareError(f"--out {out} holds files prepare_data.py does not write ({', '.join(foreign[:3])}"
                               f"{' ...' if len(foreign) > 3 else ''}): choose another --out")
        if os.listdir(out) and not os.path.exists(os.path.join(out, "prepare.json")) and not overwrite:
            raise PrepareError(f"--out {out} holds an unfinished preparation (no prepare.json): pass --overwrite to "
                               "redo it, or another --out")


def prepare(args):
    pairs, langs = check_options(args)
    final_out = os.path.abspath(args.out)
    stamp_path = os.path.join(final_out, "prepare.json")
    options = {
        "src": args.src, "tgt": args.tgt, "train_size": args.train_size, "valid_size": args.valid_size,
        "test_size": args.test_size, "vocab_size": args.vocab_size, "data_root": os.path.abspath(args.data_root),
    }
    if pairs:
        options = {k: v for k, v in options.items() if k not in ("src", "tgt")}
        options["lang_pairs"] = pairs
    check_out(final_out, args.overwrite)
    if already_prepared(final_out, stamp_path, options, args.overwrite, stamp_options=lambda stamp: {
            key: value for key, value in stamp.items() if key != FINGERPRINT_KEY}):
        return final_out

    out = f"{final_out}.tmp{os.getpid()}"  # built here, renamed to --out at the end
    if os.path.exists(out):
        shutil.rmtree(out)
    try:
        _build(args, out, pairs, langs, options)
        if os.path.exists(final_out):
            old = f"{final_out}.old{os.getpid()}"
            os.replace(final_out, old)
            os.replace(out, final_out)
            shutil.rmtree(old)
        else:
            os.replace(out, final_out)
    finally:
        if os.path.exists(out):
            shutil.rmtree(out)
    what = f"{len(pairs)} directions ({','.join(pairs)})" if pairs else f"{args.src}-{args.tgt}"
    print(f"| prepared {what} in {final_out} (binarized data: {os.path.join(final_out, 'bin')})")
    return final_out


def _build(args, out, pairs, langs, options):
    stamp_path = os.path.join(out, "prepare.json")
    sizes = {"train": args.train_size, "valid": args.valid_size, "test": args.test_size}
    for sub in ("raw", "tok", "spm"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)

    tokenized = {}
    for split, limit in sizes.items():
        raw = {lang: read_split(args.data_root, split, lang, limit) for lang in langs}
        # aligned corpus: keep a sentence only where every language has text
        keep = [i for i in range(len(raw[langs[0]])) if all(raw[lang][i].strip() for lang in langs)]
        for lang in langs:
            lines = [raw[lang][i] for i in keep]
            write_lines(os.path.join(out, "raw", f"{split}.{lang}"), lines)
            tokenized[split, lang] = moses_tokenize(lines, lang)
            write_lines(os.path.join(out, "tok", f"{split}.{lang}"), tokenized[split, lang])
        print(f"| {split}: {len(keep)} aligned sentences ({', '.join(langs)})")

    train_sentencepiece(
        [os.path.join(out, "tok", f"train.{lang}") for lang in langs],
        os.path.join(out, "spm"), args.vocab_size, seed_sentences=len(langs) * len(tokenized["train", langs[0]]),
    )
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "spm.model"))
    for (split, lang), lines in tokenized.items():
        pieces = [" ".join(p) for p in sp.encode(lines, out_type=str)]
        write_lines(os.path.join(out, "spm", f"{split}.{lang}"), pieces)

    if pairs:
        binarize_multilingual(out, pairs, langs, args.workers)
    else:
        binarize_bilingual(out, args.src, args.tgt, args.workers)
    with open(stamp_path + ".tmp", "w") as f:
        json.dump({**options, FINGERPRINT_KEY: binarized_fingerprint(os.path.join(out, "bin"))}, f, indent=1)
    os.replace(stamp_path + ".tmp", stamp_path)


def get_parser():
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--src", default="en", help="source language (en, de, fr, cs)")
    p.add_argument("--tgt", default="fr", help="target language (en, de, fr, cs)")
    p.add_argument("--lang-pairs", help="many-to-many mode: comma-separated directions (en-de,de-en,...) or "
                                        "'xie2021' for the 8 directions En<->De, En<->Fr, En<->Cs, De<->Fr; "
                                        "replaces --src/--tgt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="folder with Multi30k's raw gzip files")
    p.add_argument("--train-size", type=int, default=0, help="use only the first N training sentences (0 = all 29,000)")
    p.add_argument("--valid-size", type=int, default=0, help="use only the first N validation pairs (0 = all)")
    p.add_argument("--test-size", type=int, default=0, help="use only the first N test pairs (0 = all)")
    p.add_argument("--vocab-size", type=int, default=8000, help="joint sentencepiece vocabulary size")
    p.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    add_overwrite_option(p)
    return p


def main(argv=None):
    preparation_main(COMMAND, get_parser(), prepare, argv)


if __name__ == "__main__":
    main()
