"""``--task translation_multi_neuron_masked``: fairseq's many-to-many ``translation_multi_simple_epoch`` (language
tokens via ``--encoder-langtok``/``--decoder-langtok``, Johnson et al. 2017) for a ``transformer_neuron_masked``
model (Xie et al. 2021, masked fine-tuning): every sample carries its language pair, so a mixed-language batch runs
each sample with the mask of its own pair (general neurons + those specific to the pair, Eq. 9).

* Data: the data manager wraps each direction's dataset in :class:`PairIdDataset`, which tags its samples with
  the direction's index in the task's language pairs. fairseq's sampled / concatenated multilingual datasets
  collate all directions with one shared collater; the wrapper's collater puts the tags into
  ``net_input["pair_ids"]`` (shape ``(B,)``) in batch order.
* Steps: before the model sees a batch, the task maps these indices to the model's mask pairs
  (``model.pair_index``), so the mask file may list the pairs in any order.
* Generation (``fairseq-generate --source-lang X --target-lang Y --lang-pairs ...``): one direction, the X-Y mask
  for the whole batch (beam search drops finished sentences from its batch, so per-sample masks are not carried
  into incremental decoding).

The Multilingual baseline is the plain ``translation_multi_simple_epoch`` task with ``--arch transformer``
(or this task with masks of ρ = 1); masked fine-tuning starts from it with ``--finetune-from-model``.
"""

from typing import Optional

import torch
from fairseq.data import BaseWrapperDataset
from fairseq.data.multilingual.multilingual_data_manager import MultilingualDatasetManager
from fairseq.tasks.translation_multi_simple_epoch import TranslationMultiSimpleEpochTask
from omegaconf import II

from ..common.errors import InterpretError
from ..common.legacy_task_config import arguments_namespace, config_of_arguments, string_options
from ..common.multilingual import decoder_langtok_prefix, inference_direction
from ..common.registry import register_task
from ..common.wrappers import unwrap
from .model import using_pair

TASK = "translation_multi_neuron_masked"
LANG_SPECIFIC_TASK = "translation_multi_lang_specific"

#: options of other groups that fairseq's multilingual data manager reads from the task's namespace
OTHER_GROUPS = (("seed", int, II("common.seed")), ("dataset_impl", Optional[str], II("dataset.dataset_impl")),
                ("train_subset", str, II("dataset.train_subset")))

#: the yaml / hydra config of the many-to-many tasks: ``translation_multi_simple_epoch``'s options, same names,
#: help and defaults (``task.lang_pairs: en-de,de-en`` as ``--lang-pairs en-de,de-en``)
TranslationMultiNeuronMaskedConfig = config_of_arguments("TranslationMultiNeuronMaskedConfig",
                                                         TranslationMultiSimpleEpochTask.add_args, OTHER_GROUPS)


class PairIdDataset(BaseWrapperDataset):
    """One direction's dataset whose samples carry ``pair_id``; the collater adds ``net_input["pair_ids"]``.

    The collater may receive samples of several directions (fairseq collates a multilingual batch with the first
    direction's collater), so the ids are read from the samples, never from ``self``.
    """

    def __init__(self, dataset, pair_id):
        super().__init__(dataset)
        self.pair_id = pair_id

    def __getitem__(self, index):
        return {**self.dataset[index], "pair_id": self.pair_id}

    def collater(self, samples, **extra_args):
        # collate with positions as ids: the collated ``id`` then tells where each sample went (fairseq sorts by length)
        batch = self.dataset.collater([{**s, "id": i} for i, s in enumerate(samples)], **extra_args)
        if not batch:
            return batch
        order = batch["id"].tolist()
        batch["id"] = torch.tensor([samples[i]["id"] for i in order], dtype=torch.long)
        batch["net_input"]["pair_ids"] = torch.tensor([samples[i]["pair_id"] for i in order], dtype=torch.long)
        return batch


class PairIdDataManager(MultilingualDatasetManager):
    """fairseq's multilingual data manager whose per-direction datasets are :class:`PairIdDataset`."""

    def load_a_dataset(self, split, data_path, src, src_dict, tgt, tgt_dict, combine, **kwargs):
        dataset = super().load_a_dataset(split, data_path, src, src_dict, tgt, tgt_dict, combine, **kwargs)
        return PairIdDataset(dataset, self.lang_pairs.index(f"{src}-{tgt}"))


@register_task(TASK, dataclass=TranslationMultiNeuronMaskedConfig)
class TranslationMultiNeuronMaskedTask(TranslationMultiSimpleEpochTask):
    """Many-to-many translation with per-sample neuron masks of each sample's language pair (Xie et al. 2021).

    No options of its own: it takes ``translation_multi_simple_epoch``'s (the command line's, or the same names in
    a yaml config, :data:`TranslationMultiNeuronMaskedConfig`) and the model's ``--neuron-masks``.
    """

    task_name = TASK
    add_args = staticmethod(string_options(TranslationMultiSimpleEpochTask.add_args))

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        """The parent's setup on the namespace ``argparse`` would give for ``cfg`` (a yaml config or the CLI's)."""
        return super().setup_task(arguments_namespace(cfg, TranslationMultiSimpleEpochTask.add_args, OTHER_GROUPS),
                                  **kwargs)

    def __init__(self, args, langs, dicts, training):
        super().__init__(args, langs, dicts, training)
        if args.lang_tok_replacing_bos_eos or args.extra_data:
            raise InterpretError(f"--task {self.task_name} supports neither --lang-tok-replacing-bos-eos nor --extra-data "
                                 "(their per-direction collaters drop the pair ids): use --encoder-langtok / "
                                 "--decoder-langtok")
        self.data_manager = PairIdDataManager(args, self.lang_pairs, langs, dicts, self.sampling_method)

    def with_model_pair_ids(self, sample, model):
        """``sample`` with ``net_input["pair_ids"]`` mapped from the task's pairs to ``model``'s mask pairs."""
        if not sample or "net_input" not in sample:
            return sample
        ids = sample["net_input"].get("pair_ids")
        if ids is None:
            raise InterpretError(f"--task {self.task_name}: a batch without pair ids (was the dataset loaded by this task?)")
        model = unwrap(model)
        if not hasattr(model, "pair_index"):
            raise InterpretError(f"--task {self.task_name} needs a model with per-pair masks or modules "
                                 f"(transformer_neuron_masked, transformer_lang_adapter, transformer_target_attention), "
                                 f"got {type(model).__name__} (the baseline uses --task translation_multi_simple_epoch)")
        table = torch.tensor([model.pair_index(p) for p in self.lang_pairs], device=ids.device)
        return {**sample, "net_input": {**sample["net_input"], "pair_ids": table[ids]}}

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        return super().train_step(self.with_model_pair_ids(sample, model), model, criterion, optimizer, update_num,
                                  ignore_grad)

    def valid_step(self, sample, model, criterion):
        return super().valid_step(self.with_model_pair_ids(sample, model), model, criterion)

    def attribution_context(self, models):
        """``fairseq-interpret``: one direction (``--source-lang``/``--target-lang``), one of the checkpoint's mask
        pairs; every forward of the run (generation, attribution) uses its mask."""
        pair = inference_direction(self, self.task_name)
        for model in models:
            pairs = getattr(unwrap(model), "pairs", None)
            if pairs is not None and pair not in pairs:
                raise InterpretError(f"direction {pair} is not one of the checkpoint's language pairs "
                                     f"({', '.join(pairs)}): pass --source-lang/--target-lang of one of them")
        return using_pair(models, pair, self.task_name)

    def attribution_decoder_prefix(self):
        return decoder_langtok_prefix(self)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        net_input = dict(sample["net_input"])
        ids = net_input.pop("pair_ids", None)  # the encoder's forward takes no pair ids
        pairs = sorted({self.lang_pairs[i] for i in ids.tolist()}) if ids is not None else list(self.lang_pairs)
        if len(pairs) != 1:
            raise InterpretError(f"generation runs one direction at a time, got {', '.join(pairs)}: pass "
                                 "--source-lang and --target-lang")
        with using_pair(models, pairs[0], self.task_name):
            return super().inference_step(generator, models, {**sample, "net_input": net_input},
                                          prefix_tokens=prefix_tokens, constraints=constraints)


@register_task(LANG_SPECIFIC_TASK, dataclass=TranslationMultiNeuronMaskedConfig)
class TranslationMultiLangSpecificTask(TranslationMultiNeuronMaskedTask):
    """Many-to-many translation for the models with per-language-pair modules of Xie et al.'s baselines
    (``transformer_lang_adapter``, ``transformer_target_attention``, :mod:`.baselines`): the same pair ids per
    sample as ``translation_multi_neuron_masked``, which it is under another name."""

    task_name = LANG_SPECIFIC_TASK
