"""``classification.py sst2``'s accuracy of a checkpoint: each split loaded by its name and read in batches through
fairseq's batch iterator, and equal to the accuracy computed sentence by sentence from the split's text."""

import argparse
import importlib.util
import math
import os
import random

import pytest
import torch

from conftest import REPO, run

DRIVER = os.path.join(REPO, "scripts", "reproduce", "snell2021", "classification.py")
WORDS = ["good", "bad", "film", "plot", "the", "a", "very", "actors"]


def _driver():
    spec = importlib.util.spec_from_file_location("snell2021_classification", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toy_sentiment_data(folder, sizes=None, seed=0):
    """Sentences of 2-9 words labelled 1 when "good" outnumbers "bad", binarized as ``sentence_prediction`` reads
    them (``bin/input0``, ``bin/label`` with the label dictionary 0, 1): ``(bin, {split: (lines, labels)})``."""
    rng = random.Random(seed)
    text, splits = folder / "text", {}
    text.mkdir(parents=True)
    for split, n in (sizes or {"train": 80, "valid": 13, "test": 21}).items():
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) for _ in range(n)]
        labels = [int(line.split().count("good") > line.split().count("bad")) for line in lines]
        (text / f"{split}.input0").write_text("".join(line + "\n" for line in lines))
        (text / f"{split}.label").write_text("".join(f"{y}\n" for y in labels))
        splits[split] = (lines, labels)
    prefixes = ["--trainpref", "--validpref", "--testpref"]
    (folder / "label.dict.txt").write_text("0 1\n1 1\n")
    for kind, extra in (("input0", []), ("label", ["--srcdict", str(folder / "label.dict.txt")])):
        run(["fairseq-preprocess", "--only-source", "--destdir", str(folder / "bin" / kind), "--workers", "1", *extra,
             *[x for p, split in zip(prefixes, ("train", "valid", "test")) for x in (p, str(text / f"{split}.{kind}"))]])
    return folder / "bin", splits


@pytest.mark.slow
def test_accuracy_reads_each_split_by_name_in_batches_and_equals_the_sentence_by_sentence_count(tmp_path,
                                                                                                 monkeypatch):
    from fairseq_interp.attention_learning.classifier import LSTMAttentionClassifier
    from fairseq_interp.common.checkpoints import load_checkpoint

    data, splits = toy_sentiment_data(tmp_path / "sst")
    run(["fairseq-train", str(data), "--user-dir", "fairseq_interp", "--task", "sentence_prediction", "--num-classes",
         "2", "--max-positions", "1024", "--arch", "lstm_attention_classifier_tiny", "--criterion",
         "sentence_prediction", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "16", "--max-update", "8",
         "--seed", "1", "--cpu", "--disable-validation", "--no-epoch-checkpoints", "--no-progress-bar",
         "--save-dir", str(tmp_path / "ckpt")])
    checkpoint = str(tmp_path / "ckpt" / "checkpoint_last.pt")

    # by hand: every line of the split's text, alone, through the trained model
    _, _, model = load_checkpoint(checkpoint, str(data), require_encoder_decoder=False)
    model.eval()
    expected = {}
    with torch.no_grad():
        for split in ("valid", "test"):
            lines, labels = splits[split]
            hits = [int(model(model.dictionary.encode_line(line, add_if_not_exist=False).long()[None])[0][0].argmax())
                    == y for line, y in zip(lines, labels)]
            expected[split] = 100.0 * sum(hits) / len(hits)

    batch_sizes = []
    forward = LSTMAttentionClassifier.forward

    def spy(self, src_tokens, *args, **kwargs):
        batch_sizes.append(src_tokens.size(0))
        return forward(self, src_tokens, *args, **kwargs)

    monkeypatch.setattr(LSTMAttentionClassifier, "forward", spy)
    options = argparse.Namespace(batch_size=4, max_tokens=None, no_progress_bar=True, log_format="simple",
                                 log_interval=1)
    accuracy = _driver().checkpoint_accuracy(checkpoint, str(data), ["valid", "test"], options)
    assert accuracy == pytest.approx(expected, abs=1e-9)
    # fairseq's batches of --batch-size 4, not one forward per sentence
    assert sum(batch_sizes) == 13 + 21 and max(batch_sizes) == 4
    assert len(batch_sizes) == math.ceil(13 / 4) + math.ceil(21 / 4)
