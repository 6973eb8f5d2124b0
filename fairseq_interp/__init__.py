"""fairseq-interp: interpretability and sparsification of fairseq translation models.

Use as ``--user-dir fairseq_interp`` (a path to this folder) with any fairseq command. Importing the package
allow-lists the classes fairseq checkpoints pickle, so checkpoints load with torch's safe loader (torch >= 2.6),
stops fairseq's prefetch threads at exit (see :mod:`.common.clean_exit`: no abort after training stops mid-epoch),
turns the plugin's errors inside fairseq's own commands (``fairseq-train --neuron-masks ...``) into one line with
exit code 2 (:func:`.common.cli.install_error_hook`), and registers the plugin's architectures, criterions and
tasks (idempotently: importing twice is harmless).

One package per paper, on shared plumbing (:mod:`.common`, which imports no paper package):

* :mod:`.word_importance`: He et al. 2019, word importance by integrated gradients and its evaluations, Captum's
  other attribution methods, target-prefix and contrastive attribution, raw-text input, and the Python API
  (``from fairseq_interp.word_importance import from_pretrained``: a checkpoint and a sentence to a heatmap in a
  notebook);
* :mod:`.heads`: Voita et al. 2019, head relevance and roles, Hard Concrete head gates, pruning;
* :mod:`.neurons`: Xie et al. 2021, language-pair neuron importance, allocation and masking;
* :mod:`.lca`: Zhu et al., loss change allocation during training;
* :mod:`.attention_learning`: Snell et al. 2021, how single-head attention learns.
"""

__version__ = "0.1.0"

from .common.quiet_import import root_logger_kept as _root_logger_kept  # noqa: E402

with _root_logger_kept():
    from .common import safe_loading as _safe_loading

    _safe_loading.install()

    from .common import clean_exit as _clean_exit

    _clean_exit.install()

    from .common import cli as _cli

    _cli.install_error_hook()  # one line, exit 2, for the plugin's errors inside fairseq's own commands

    from .common import architectures  # noqa: F401  (registers the shared sizes)
    from . import word_importance  # noqa: F401
    from . import heads  # noqa: F401  (registers transformer_gated_heads, label_smoothed_cross_entropy_l0)
    from . import neurons  # noqa: F401  (registers transformer_neuron_masked and its tasks)
    from . import lca  # noqa: F401  (registers translation_lca)
    from . import attention_learning  # noqa: F401  (registers permutation_copy, lstm_dot_attention)
