"""The shared split reader: fairseq's batch iterator restricted to ids < N, honouring --max-tokens and sharding,
and fairseq's progress bar around any iterable."""

from types import SimpleNamespace

import pytest
import torch

from fairseq_interp.common.batches import planned_ids, progress, split_batches


def _task_and_dataset(lengths):
    from fairseq.data import Dictionary, LanguagePairDataset
    from fairseq.tasks import FairseqTask

    d = Dictionary()
    for w in "abcdefgh":
        d.add_symbol(w)
    src = [torch.full((n,), d.index("a"), dtype=torch.long) for n in lengths]
    dataset = LanguagePairDataset(src, torch.tensor(lengths), d, src, torch.tensor(lengths), d)
    return FairseqTask(SimpleNamespace()), dataset


LENGTHS = [3, 9, 4, 12, 5, 7, 2, 8, 6, 10, 11, 1]


@pytest.mark.parametrize("num_sentences", [0, 7])
def test_shards_partition_the_first_sentences(num_sentences):
    task, dataset = _task_and_dataset(LENGTHS)
    wanted = set(range(num_sentences or len(LENGTHS)))
    seen = []
    for shard in range(3):
        options = SimpleNamespace(batch_size=2, max_tokens=None, num_shards=3, shard_id=shard)
        epoch_itr, batches = split_batches(task, dataset, options, num_sentences=num_sentences)
        ids = [i for sample in batches if sample for i in sample["id"].tolist()]  # a short shard ends with {}
        assert sorted(ids) == sorted(planned_ids(epoch_itr, options))
        seen += ids
    assert sorted(seen) == sorted(wanted)  # every sentence once, none beyond --num-sentences


def test_max_tokens_bounds_every_batch():
    task, dataset = _task_and_dataset(LENGTHS)
    options = SimpleNamespace(batch_size=None, max_tokens=24)
    _, batches = split_batches(task, dataset, options)
    samples = list(batches)
    assert sum(s["nsentences"] for s in samples) == len(LENGTHS)
    for s in samples:  # padded size: sentences x longest source
        assert s["net_input"]["src_tokens"].numel() <= 24
    assert len(samples) > 1


def test_progress_yields_every_item_with_or_without_a_length():
    assert list(progress([1, 2, 3], SimpleNamespace(no_progress_bar=True, log_interval=1))) == [1, 2, 3]
    assert list(progress((i for i in range(4)), None, total=4)) == [0, 1, 2, 3]
