"""What the two tasks that generate their data on the fly share (``permutation_copy``, Snell et al. 2021 §4, and
``keyword_classification``, §6.1): the splits ``train``, ``valid`` and ``test`` (also ``valid1``, ...), each drawn
from its own random stream of ``--data-seed``, their sizes, and one dictionary for inputs and outputs."""

from fairseq.tasks import FairseqTask

from ..common.errors import InterpretError

#: the random stream of each split: data = generate(..., seed=[data_seed, SPLIT_STREAMS[split]])
SPLIT_STREAMS = {"train": 0, "valid": 1, "test": 2}


class GeneratedDataTask(FairseqTask):
    """A task whose ``cfg`` has ``train_size``, ``valid_size`` and ``data_seed``; ``dictionary`` is both sides'."""

    def __init__(self, cfg, dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @staticmethod
    def check_sizes(cfg):
        if cfg.train_size < 1 or cfg.valid_size < 1:
            raise InterpretError("--train-size and --valid-size must be >= 1")

    def split_stream(self, split, task_name):
        """``(number of examples, seed)`` of ``split`` (``train``: ``--train-size``; ``valid``, ``test``:
        ``--valid-size``)."""
        base = split.rstrip("0123456789")
        if base not in SPLIT_STREAMS:
            raise InterpretError(f"{task_name} has splits {', '.join(SPLIT_STREAMS)}, not {split!r}")
        n = self.cfg.train_size if base == "train" else self.cfg.valid_size
        return n, [self.cfg.data_seed, SPLIT_STREAMS[base]]

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
