"""The many-to-many tasks (``translation_multi_neuron_masked``, ``translation_multi_lang_specific``) from a yaml
config are the tasks ``fairseq-train`` sets up from its command line: the config has every option of fairseq's
``translation_multi_simple_epoch`` with its default and help, the task receives the same namespace (``--lang-pairs``
read as a list or from a file, ``--langtoks`` as a dict), and a tiny model trained through ``fairseq-hydra-train``
has the state dict of the ``fairseq-train`` run.

The yaml side is what ``fairseq-hydra-train`` does to a config: the yaml merged into fairseq's ``FairseqConfig``,
``add_defaults`` (the registered dataclass fills the task), interpolations resolved; the command-line side is
``parse_args_and_arch`` then ``convert_namespace_to_omegaconf``, as in ``fairseq-train``.
"""

import argparse
import dataclasses
import os
import shlex

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers the tasks and models)
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.neurons.multi_task import LANG_SPECIFIC_TASK, TASK, TranslationMultiNeuronMaskedConfig

from conftest import REPO, run
from test_neurons_hydra import toy_parallel_data

TASKS = [TASK, LANG_SPECIFIC_TASK]
EXAMPLE = os.path.join(REPO, "configs", "neurons", "many_to_many_masked_finetune.yaml")
#: language-token dict of fairseq's ``--langtoks`` (a string parsed by fairseq's ``eval_str_dict``)
LANGTOKS = "{'main': ('src', 'tgt')}"


def test_config_is_every_option_of_translation_multi_simple_epoch_with_its_default_and_help():
    from fairseq.tasks.translation_multi_simple_epoch import TranslationMultiSimpleEpochTask

    parser = argparse.ArgumentParser(add_help=False)
    TranslationMultiSimpleEpochTask.add_args(parser)
    options = {a.dest: a for a in parser._actions}
    fields = {f.name: f for f in dataclasses.fields(TranslationMultiNeuronMaskedConfig)}
    assert len(options) > 30 and set(fields) == set(options) | {"_name", "seed", "dataset_impl", "train_subset"}
    for dest, action in options.items():
        assert fields[dest].default == action.default, dest
        assert fields[dest].metadata["help"] == (action.help or f"{action.option_strings[0]} (the parent task "
                                                                 "gives no help)"), dest
    assert fields["lang_tok_style"].default == "multilingual" and fields["left_pad_source"].default == "True"


def _dictionaries(folder, langs=("en", "de", "fr", "cs")):
    folder.mkdir(parents=True, exist_ok=True)
    for lang in langs:  # one shared dictionary, as translation_multi_simple_epoch wants
        (folder / f"dict.{lang}.txt").write_text("".join(f"w{i} {100 - i}\n" for i in range(40)))
    return folder


def _task_from_command_line(argv):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    return tasks.setup_task(convert_namespace_to_omegaconf(args).task)


def _task_from_yaml(text, overrides=()):
    """fairseq-hydra-train's config of ``text`` (+ ``key=value`` overrides): merged into FairseqConfig, defaults
    of the registered dataclasses added, resolved; then the task it sets up."""
    from fairseq import tasks
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.dataclass.initialize import add_defaults
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(FairseqConfig), OmegaConf.create(text),
                          OmegaConf.from_dotlist(list(overrides)))
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    OmegaConf.set_struct(cfg, True)
    return tasks.setup_task(cfg.task)


def _same_task(cli, hydra):
    assert vars(cli.args) == vars(hydra.args)
    assert cli.lang_pairs == hydra.lang_pairs and cli.langs == hydra.langs and cli.training == hydra.training
    assert list(cli.dicts) == list(hydra.dicts)
    for lang in cli.dicts:
        assert cli.dicts[lang].symbols == hydra.dicts[lang].symbols


@pytest.mark.parametrize("task_name", TASKS)
def test_yaml_and_command_line_set_up_the_same_task(task_name, tmp_path):
    data = _dictionaries(tmp_path / "bin")
    pairs_file = tmp_path / "lang_pairs.txt"
    pairs_file.write_text("en-de,de-en,fr-cs")  # --lang-pairs FILE: fairseq reads the list from the file
    cli = _task_from_command_line([str(data), "--task", task_name, "--lang-pairs", str(pairs_file),
                                   "--encoder-langtok", "tgt", "--langtoks", LANGTOKS, "--sampling-method",
                                   "temperature", "--sampling-temperature", "5", "--max-tokens", "100",
                                   "--seed", "3", "--arch", "transformer_test_tiny"])
    hydra = _task_from_yaml(f"""
common: {{seed: 3}}
dataset: {{max_tokens: 100}}
task:
  _name: {task_name}
  data: {data}
  lang_pairs: {pairs_file}
  encoder_langtok: tgt
  langtoks: "{LANGTOKS}"
  sampling_method: temperature
  sampling_temperature: 5
""")
    _same_task(cli, hydra)
    assert type(hydra).__name__ == type(cli).__name__ and hydra.task_name == task_name
    assert hydra.lang_pairs == ["en-de", "de-en", "fr-cs"] and hydra.langs == ["cs", "de", "en", "fr"]
    assert hydra.args.langtoks == {"main": ("src", "tgt")} and hydra.args.langtoks_specs == ["main"]
    assert hydra.args.seed == 3 and hydra.args.train_subset == "train"  # other groups' options reach the task
    assert "__de__" in hydra.dicts["en"].symbols  # the language tokens of the languages are in the dictionary


def test_bad_choice_in_yaml_is_refused_like_the_command_line(tmp_path):
    data = _dictionaries(tmp_path / "bin")
    with pytest.raises(InterpretError, match="task.encoder_langtok: invalid choice 'source'"):
        _task_from_yaml(f"task: {{_name: {TASK}, data: {data}, lang_pairs: en-de, encoder_langtok: source}}")


def _example_command():
    """The ``fairseq-train`` command of the example config's leading comment."""
    words, taking = [], False
    for line in open(EXAMPLE, encoding="utf-8"):
        text = line.lstrip("#").strip()
        taking = taking or text.startswith("fairseq-train ")
        if taking:
            words += shlex.split(text.rstrip("\\"))
            if not text.endswith("\\"):
                break
    return words


def test_example_config_sets_up_the_task_of_its_fairseq_train_command(tmp_path):
    data = _dictionaries(tmp_path / "bin")
    command = _example_command()
    assert command[:4] == ["fairseq-train", "data/m2m/bin", "--user-dir", "fairseq_interp"]
    cli = _task_from_command_line([str(data), *command[4:]])
    with open(EXAMPLE, encoding="utf-8") as f:
        hydra = _task_from_yaml(f.read(), [f"task.data={data}", "model.neuron_masks=masks.pt"])
    _same_task(cli, hydra)
    assert hydra.lang_pairs == "en-de,de-en,en-fr,fr-en,en-cs,cs-en,de-fr,fr-de".split(",")


TRAIN = {"lr": "0.005", "max_update": 3, "max_tokens": 300, "seed": 1}


@pytest.mark.slow
def test_hydra_yaml_trains_the_state_dict_of_fairseq_train(tmp_path):
    """translation_multi_lang_specific + the per-pair adapters (built from the task's pairs): the same parameters
    after 3 updates on mixed-language batches."""
    data = toy_parallel_data(tmp_path / "toy")
    run(["fairseq-train", str(data), "--user-dir", "fairseq_interp", "--task", LANG_SPECIFIC_TASK, "--lang-pairs",
         "en-fr,fr-en", "--encoder-langtok", "src", "--decoder-langtok", "--arch",
         "transformer_lang_adapter_test_tiny", "--share-all-embeddings", "--lang-adapter-dim", "8", "--optimizer",
         "adam", "--lr-scheduler", "fixed", "--lr", TRAIN["lr"], "--max-update", str(TRAIN["max_update"]),
         "--max-tokens", str(TRAIN["max_tokens"]), "--disable-validation", "--cpu", "--seed", str(TRAIN["seed"]),
         "--no-epoch-checkpoints", "--no-progress-bar", "--save-dir", str(tmp_path / "argparse")])
    (tmp_path / "m2m.yaml").write_text(f"""common: {{user_dir: {os.path.join(REPO, 'fairseq_interp')}, cpu: true,
  seed: {TRAIN['seed']}, log_format: simple}}
task: {{_name: {LANG_SPECIFIC_TASK}, data: '???', lang_pairs: 'en-fr,fr-en', encoder_langtok: src,
  decoder_langtok: true}}
model: {{_name: transformer_lang_adapter_test_tiny, share_all_embeddings: true, lang_adapter_dim: 8}}
criterion: {{_name: cross_entropy}}
optimizer: {{_name: adam}}
lr_scheduler: {{_name: fixed}}
optimization: {{lr: [{TRAIN['lr']}], max_update: {TRAIN['max_update']}}}
dataset: {{max_tokens: {TRAIN['max_tokens']}, disable_validation: true}}
checkpoint: {{no_epoch_checkpoints: true}}
""")
    run(["fairseq-hydra-train", "--config-dir", str(tmp_path), "--config-name", "m2m", f"task.data={data}",
         f"checkpoint.save_dir={tmp_path / 'hydra'}"], cwd=str(tmp_path))
    cli, hydra = (torch.load(tmp_path / run_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
                  for run_dir in ("argparse", "hydra"))
    assert cli["optimizer_history"][-1]["num_updates"] == hydra["optimizer_history"][-1]["num_updates"] == 3
    assert sorted(cli["model"]) == sorted(hydra["model"])
    assert sum(k.startswith("encoder.lang_adapters") or "adapter" in k for k in hydra["model"]) > 0
    for key, value in cli["model"].items():
        assert torch.equal(hydra["model"][key], value), key
    assert cli["cfg"]["task"] == hydra["cfg"]["task"]  # the same task config is saved with the checkpoint
