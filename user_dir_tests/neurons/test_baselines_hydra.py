"""``transformer_lang_adapter`` and ``transformer_target_attention`` (Xie et al. 2021's +Adapter and +TS baselines)
built from a yaml model config the way ``fairseq-hydra-train`` builds it are the models ``fairseq-train`` builds
from the command line: same options, same parameters, and the same state dict after 2 identical updates.

Their task, ``translation_multi_lang_specific``, extends fairseq's ``translation_multi_simple_epoch``, which
registers no dataclass in fairseq 0.12: ``fairseq.tasks.setup_task`` builds a task from a hydra config only when its
name is in ``TASK_DATACLASS_REGISTRY`` (otherwise "Could not infer task type"), so ``fairseq-hydra-train`` cannot
run these models end to end. What hydra does to the *model* section is tested here with fairseq's own functions:
``add_defaults`` (the registered dataclass fills the options) then ``models.build_model``; the command-line side is
``parse_args_and_arch`` then ``convert_namespace_to_omegaconf``, as in ``fairseq-train``.

A yaml config names the model (``model._name: transformer_lang_adapter``) and gives its sizes, as
``configs/neurons/neuron_masked_finetune.yaml`` does: with an architecture name instead
(``model._name: transformer_lang_adapter_test_tiny``) hydra's ``add_defaults`` first fills every Transformer option
with the dataclass default (512-dim, 6 layers), so the architecture function, which only sets what is unset, changes
nothing and the model is silently base-sized (the strict xfail below).
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import fairseq_interp  # noqa: F401  (registers the models)

PAIRS = "en-de,de-en,en-fr"
MODELS = {  # architecture: its own options (yaml name -> value), all away from their defaults
    "transformer_lang_adapter_test_tiny": {"lang_adapter_dim": 8, "lang_adapter_init": "xavier"},
    "transformer_target_attention_test_tiny": {"target_attention": "cross"},
}
#: the sizes of the ``*_test_tiny`` architectures (common/architectures.py ``transformer_test_tiny``)
TINY = {f"{side}_{key}": value for side in ("encoder", "decoder") for key, value in
        (("layers", 1), ("embed_dim", 32), ("ffn_embed_dim", 64), ("attention_heads", 2))}


def _task():
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(20):
        d.add_symbol(f"w{i}")
    return SimpleNamespace(source_dictionary=d, target_dictionary=d, lang_pairs=PAIRS.split(","))


def _from_command_line(arch, own, task):
    from fairseq import models, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = ["DATA", "--task", "translation_multi_lang_specific", "--lang-pairs", PAIRS, "--arch", arch,
            "--share-all-embeddings", "--encoder-langtok", "src", "--decoder-langtok"]
    for key, value in own.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    cfg = convert_namespace_to_omegaconf(args)
    torch.manual_seed(1)
    return models.build_model(cfg.model, task), cfg.model


def _from_yaml(name, own, task):
    from fairseq import models
    from fairseq.dataclass.initialize import add_defaults
    from omegaconf import OmegaConf

    lines = [f"  {key}: {value}" for key, value in own.items()]
    text = "\n".join(["model:", f"  _name: {name}", "  share_all_embeddings: true", "  dropout: 0.0", *lines])
    cfg = OmegaConf.create(text)
    add_defaults(cfg)
    torch.manual_seed(1)
    return models.build_model(cfg.model, task), cfg.model


def _two_updates(model, d):
    """Two Adam steps on a fixed mixed-pair batch (every pair's modules take part)."""
    g = torch.Generator().manual_seed(5)
    src = torch.randint(d.nspecial, len(d), (6, 7), generator=g)
    src[:, -1] = d.eos()
    prev = torch.randint(d.nspecial, len(d), (6, 5), generator=g)
    prev[:, 0] = d.eos()
    target = torch.randint(d.nspecial, len(d), (6, 5), generator=g)
    pair_ids = torch.tensor([0, 1, 2, 2, 1, 0])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        logits = model(src, torch.full((6,), 7), prev, pair_ids=pair_ids)[0]
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1)).backward()
        optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_yaml_model_config_builds_and_trains_what_fairseq_train_builds(arch):
    own = MODELS[arch]
    task = _task()
    cli_model, cli_cfg = _from_command_line(arch, own, task)
    yaml_model, yaml_cfg = _from_yaml(arch.replace("_test_tiny", ""), {**TINY, **own}, task)
    for key, value in own.items():
        assert str(getattr(cli_cfg, key)) == str(getattr(yaml_cfg, key)) == str(value), key
    # the tiny architecture's sizes, not the dataclass defaults (512-dim, 6 layers)
    assert cli_model.encoder.embed_tokens.embedding_dim == yaml_model.encoder.embed_tokens.embedding_dim == 32
    assert len(yaml_model.encoder.layers) == len(cli_model.encoder.layers) == 1
    assert yaml_model.pairs == cli_model.pairs == PAIRS.split(",")
    before = {k: v.clone() for k, v in cli_model.state_dict().items()}
    cli_state, yaml_state = _two_updates(cli_model, task.source_dictionary), _two_updates(yaml_model,
                                                                                        task.source_dictionary)
    assert sorted(cli_state) == sorted(yaml_state)
    for key, value in cli_state.items():
        assert torch.equal(yaml_state[key], value), key
    # the per-pair modules were trained (the comparison is not between two untouched initializations)
    per_pair = [k for k in cli_state if "adapter" in k or "target" in k or "copies" in k]
    assert per_pair and any(not torch.equal(before[k], cli_state[k]) for k in per_pair), sorted(cli_state)


@pytest.mark.xfail(strict=True, reason="hydra's add_defaults fills the Transformer options with the dataclass "
                                       "defaults before the architecture function runs: an architecture name in "
                                       "model._name gives a base-sized model")
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_architecture_name_in_yaml_gives_the_architecture_sizes(arch):
    model, _ = _from_yaml(arch, MODELS[arch], _task())
    assert model.encoder.embed_tokens.embedding_dim == 32 and len(model.encoder.layers) == 1
