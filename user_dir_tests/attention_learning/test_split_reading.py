"""The probes' training pairs and Figure 7's validation sequences, read through fairseq's batch iterator in batches
of any size, are the sentences read one by one by index: every id once, in id order, the same tokens."""

import argparse
import importlib.util
import os

import pytest
import torch

import fairseq_interp  # noqa: F401  (registrations)

from conftest import REPO
from fairseq_interp.attention_learning import probes
from fairseq_interp.attention_learning.keyword import KeywordClassificationConfig, KeywordClassificationTask
from fairseq_interp.attention_learning.keyword import keyword_log_odds
from fairseq_interp.attention_learning.classifier import LSTMAttentionClassifier, LSTMAttentionClassifierConfig
from fairseq_interp.common.batches import rows_by_id
from fairseq_interp.common.errors import InterpretError

BATCHINGS = [{"batch_size": 1}, {"batch_size": 7}, {"max_tokens": 200}, {}]


def options(**given):
    return argparse.Namespace(**{"max_tokens": None, "batch_size": None, "num_shards": 1, "shard_id": 0,
                                 "log_format": "none", "log_interval": 100, "no_progress_bar": True, **given})


def strip(tokens, *special):
    return [int(t) for t in tokens if int(t) not in special]


@pytest.fixture(scope="module")
def translation_split(transformer_ckpt, data_dir):
    from fairseq_interp.common.checkpoints import load_checkpoint, load_dataset

    task, task_cfg, _ = load_checkpoint(str(transformer_ckpt), str(data_dir / "bin"))
    return task, load_dataset(task, "valid", task_cfg)


@pytest.mark.parametrize("batching", BATCHINGS)
@pytest.mark.parametrize("max_pairs", [0, 13])
def test_training_pairs_are_the_sentences_by_index(translation_split, batching, max_pairs):
    task, dataset = translation_split
    eos, pad = task.target_dictionary.eos(), task.target_dictionary.pad()
    n = max_pairs or len(dataset)
    by_index = [(strip(dataset[i]["source"], eos, pad), strip(dataset[i]["target"], eos, pad)) for i in range(n)]
    assert len(dataset) == 100 and len(set(map(str, by_index))) > n - 3  # distinct sentences: an id mix-up shows
    assert probes.training_pairs(task, dataset, options(**batching), eos, pad, max_pairs) == by_index


def keyword_split():
    task = KeywordClassificationTask.setup_task(KeywordClassificationConfig(seq_len=8, vocab_size=6, train_size=64,
                                                                            valid_size=37))
    task.load_dataset("valid")
    return task, task.datasets["valid"]


@pytest.mark.parametrize("batching", BATCHINGS)
def test_classification_pairs_are_the_sentences_by_index(batching):
    task, dataset = keyword_split()
    by_index = [([int(t) for t in probes.classification_item(dataset[i])[0]],
                 [probes.classification_item(dataset[i])[1]]) for i in range(len(dataset))]
    got = probes.classification_pairs(task, dataset, options(**batching), task.source_dictionary.pad())
    assert got == by_index and len(set(map(str, by_index))) > 30


def test_a_sentence_read_twice_or_dropped_is_refused(translation_split, monkeypatch):
    from fairseq_interp.common import batches

    task, dataset = translation_split
    real = batches.split_batches
    for change in (lambda b: b + b[:1], lambda b: b[1:]):
        monkeypatch.setattr(batches, "split_batches", lambda *a, **k: (None, change(list(real(*a, **k)[1]))))
        with pytest.raises(InterpretError, match="of the 100 asked for"):
            rows_by_id(task, dataset, options(batch_size=8), what="valid")
    with pytest.raises(InterpretError, match="drop --num-shards"):
        rows_by_id(task, dataset, options(num_shards=2))


@pytest.mark.parametrize("batching", [{"batch_size": 5}, {"batch_size": 32}])
def test_figure7_gammas_equal_those_of_the_whole_split_in_one_batch(batching, monkeypatch):
    """``classification.py``'s ``gammas_of`` against the reading it replaced (every item collated at once)."""
    from fairseq_interp.common import checkpoints

    task, dataset = keyword_split()
    torch.manual_seed(0)
    model = LSTMAttentionClassifier.build_model(LSTMAttentionClassifierConfig(
        embed_dim=6, hidden_size=5, attention_hidden_dim=4, uniform_attention=True), task).eval()
    monkeypatch.setattr(checkpoints, "load_checkpoint", lambda *a, **k: (task, task.cfg, model))
    monkeypatch.setattr(checkpoints, "load_dataset", lambda *a, **k: dataset)
    spec = importlib.util.spec_from_file_location(
        "snell2021_classification", os.path.join(REPO, "scripts", "reproduce", "snell2021", "classification.py"))
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)

    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    src, labels = batch["net_input"]["src_tokens"], batch["target"]
    want = keyword_log_odds(model, src, labels, task.dictionary.index("1"))
    with torch.no_grad():
        want["accuracy"] = 100.0 * float((model(src)[0].argmax(-1) == labels).double().mean())
    assert driver.gammas_of("unused.pt", options(**batching)) == want
