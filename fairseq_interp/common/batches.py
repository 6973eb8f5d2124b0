"""Reading a split the way fairseq does: fairseq's batch iterator (``--max-tokens``, ``--batch-size``,
``--num-shards``/``--shard-id``, ``--skip-invalid-size-inputs-valid-test``) restricted to the sentences with id
< ``--num-sentences``, under fairseq's progress bar (``--log-format``, ``--log-interval``, ``--no-progress-bar``).

Every command that reads a split of a data folder uses :func:`split_batches`; commands that loop over something
else (curve points, sweep runs, IBM Model 1 iterations) use :func:`progress`.
"""

import logging
import warnings

from .errors import InterpretError

logger = logging.getLogger(__name__)

# fairseq's data loader asks for pinned memory whatever the device; on a CPU-only machine torch warns once per run
warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator is found.*")


def first_sentences(dataset, n):
    """``dataset`` restricted to ids < ``n`` (its ``ordered_indices`` filtered; ``n`` <= 0 = all)."""
    if n is None or n <= 0:
        return dataset
    from fairseq.data import BaseWrapperDataset

    class FirstSentences(BaseWrapperDataset):
        def ordered_indices(self):
            indices = self.dataset.ordered_indices()
            return indices[indices < n]

    return FirstSentences(dataset)


def _get(options, name, default=None):
    """``options.name`` for an argparse namespace or a fairseq config section (missing -> ``default``)."""
    value = getattr(options, name, default)
    return default if value is None and default is not None else value


def split_batches(task, dataset, options, max_positions=None, num_sentences=0, default_batch_size=16, seed=1,
                  what=None):
    """The batches of ``dataset`` for this shard, in fairseq's order (by length), as ``(epoch_itr, batches)``.

    ``options`` holds fairseq's dataset options (an argparse namespace or ``cfg.dataset``): ``max_tokens``,
    ``batch_size`` (``default_batch_size`` when neither is given), ``num_shards``, ``shard_id``, ``num_workers``
    and ``skip_invalid_size_inputs_valid_test``. ``epoch_itr.frozen_batches[shard_id::num_shards]`` are the ids
    this shard reads. As in fairseq-generate, a shard with fewer batches than the others ends with an empty sample
    (``{}``): skip samples without ``"net_input"``.

    A sentence longer than the model's positions (without ``--skip-invalid-size-inputs-valid-test``) or than
    ``--max-tokens`` is one :class:`InterpretError` naming the fix; ``what`` names the data in it (default: the
    split, ``options.gen_subset``)."""
    max_tokens = _get(options, "max_tokens")
    batch_size = _get(options, "batch_size")
    if max_tokens is None and batch_size is None:
        batch_size = default_batch_size
    num_shards, shard_id = _get(options, "num_shards", 1), _get(options, "shard_id", 0)
    try:
        epoch_itr = task.get_batch_iterator(
            dataset=first_sentences(dataset, num_sentences), max_tokens=max_tokens, max_sentences=batch_size,
            max_positions=max_positions,
            ignore_invalid_inputs=bool(_get(options, "skip_invalid_size_inputs_valid_test")),
            required_batch_size_multiple=1, seed=seed, num_shards=num_shards, shard_id=shard_id,
            num_workers=_get(options, "num_workers", 0) or 0, disable_iterator_cache=True)
    except Exception as e:  # fairseq refuses sentences that do not fit with bare Exceptions / AssertionErrors
        error = _size_error(e, what or _get(options, "gen_subset") or "the split")
        if error is None:
            raise
        raise error from None
    return epoch_itr, epoch_itr.next_epoch_itr(shuffle=False)


def _size_error(error, what):
    """fairseq's refusal of a sentence that does not fit, as one line naming the fix (``None``: another error)."""
    lines = str(error).strip().splitlines()
    message = lines[0].rstrip(".!") if lines else ""
    if "max_tokens" in message:
        fix = "pass a larger --max-tokens, or --batch-size instead"
    elif "skip-invalid-size-inputs-valid-test" in message or "skip_invalid_size_inputs_valid_test" in message:
        message = message.split(", skip")[0]
        fix = "pass --skip-invalid-size-inputs-valid-test to skip sentences longer than the model's positions"
    else:
        return None
    return InterpretError(f"{what}: {message}: {fix}")


def rows_by_id(task, dataset, options, num_sentences=0, what=None, default_batch_size=16):
    """``[(source row, target row or None)]`` of the sentences with id < ``num_sentences`` (0 = all) of ``dataset``
    in id order, read through :func:`split_batches` (every sentence kept, whatever its length) under
    :func:`progress`. Rows are the collated batches' rows, padding included (the caller strips it). A sentence
    dropped or read twice is an :class:`InterpretError`; so is sharding (the whole split is read)."""
    what = what or _get(options, "gen_subset") or "the split"
    if (_get(options, "num_shards", 1) or 1) > 1:
        raise InterpretError(f"{what} is read whole: drop --num-shards")
    _, batches = split_batches(task, dataset, options, None, num_sentences, default_batch_size, what=what)
    ids, rows = [], []
    for sample in progress(batches, options, prefix=f"reading {what}"):
        if "net_input" not in sample:
            continue
        target = sample.get("target")
        for k, sentence_id in enumerate(sample["id"].tolist()):
            ids.append(int(sentence_id))
            rows.append((sample["net_input"]["src_tokens"][k], None if target is None else target[k]))
    expected = len(dataset) if not num_sentences or num_sentences <= 0 else min(num_sentences, len(dataset))
    if sorted(ids) != list(range(expected)):
        raise InterpretError(f"{what}: read {len(ids)} sentences ({len(set(ids))} distinct) of the {expected} "
                             "asked for")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return [rows[k] for k in order]


def planned_ids(epoch_itr, options):
    """The sentence ids this shard of ``epoch_itr`` reads."""
    num_shards, shard_id = _get(options, "num_shards", 1), _get(options, "shard_id", 0)
    return [int(i) for batch in epoch_itr.frozen_batches[shard_id::num_shards] for i in batch]


def progress(iterable, options=None, prefix=None, total=None):
    """``iterable`` under fairseq's progress bar: tqdm on a terminal unless ``--no-progress-bar``, else fairseq's
    ``simple`` format every ``--log-interval`` items (``options``: an argparse namespace or ``cfg.common``; without
    them, the defaults of fairseq's options). ``total`` for iterables without a length."""
    from fairseq.logging import progress_bar

    if total is not None and not hasattr(iterable, "__len__"):
        iterable = _Sized(iterable, total)
    no_bar = bool(_get(options, "no_progress_bar", False))
    return progress_bar.progress_bar(
        iterable, log_format=_get(options, "log_format"), log_interval=_get(options, "log_interval", 100),
        prefix=prefix, default_log_format="simple" if no_bar else "tqdm")


def progress_loop(items, options=None, prefix=None, total=None):
    """The items of ``items`` under :func:`progress`, logging after each item's turn of the loop (``done``: how
    many so far, ``of``: how many; with the simple/json formats every ``--log-interval`` items). For loops over a
    few long items: a driver's runs, systems, seeds, λ values. ``total`` for an iterable without a length."""
    total = len(items) if total is None else total
    bar = progress(items, options, prefix=prefix, total=total)
    for done, item in enumerate(bar, start=1):
        yield item
        bar.log({"done": done, "of": total}, step=done)


class _Sized:
    """An iterable with a known length (fairseq's progress bars need ``len``)."""

    def __init__(self, iterable, total):
        self.iterable, self.total = iterable, total
        self.n = 0

    def __len__(self):
        return self.total

    def __iter__(self):
        return iter(self.iterable)
