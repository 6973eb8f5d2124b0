"""Every plugin Transformer (gated heads, neuron-masked, adapters, target-specific attention) is the same model
whether ``fairseq-train`` builds it from the command line or ``fairseq-hydra-train`` from a yaml config, with
``model._name`` an architecture (``X_test_tiny``) or the model name and its sizes: same parameters, same state-dict
keys, same values from the same seed, and (for the per-pair models) the same state dict after 2 identical updates.

What hydra does to the model section is done here with fairseq's own functions: ``add_defaults`` (the registered
dataclass fills the options) then ``models.build_model``; the command-line side is ``parse_args_and_arch`` then
``convert_namespace_to_omegaconf``, as in ``fairseq-train``. (The end-to-end ``fairseq-hydra-train`` runs are in
``heads/test_gated_heads.py``, ``neurons/test_neurons_hydra.py`` and ``neurons/test_neurons_multilingual.py``.)
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import fairseq_interp  # noqa: F401  (registers the models)

PAIRS = "en-de,de-en,en-fr"
#: model: (task flags of its fairseq-train command, its own options away from their defaults)
MODELS = {
    "transformer_lang_adapter": (["--task", "translation_multi_lang_specific", "--lang-pairs", PAIRS,
                                  "--encoder-langtok", "src", "--decoder-langtok"],
                                 {"lang_adapter_dim": 8, "lang_adapter_init": "xavier"}),
    "transformer_target_attention": (["--task", "translation_multi_lang_specific", "--lang-pairs", PAIRS,
                                      "--encoder-langtok", "src", "--decoder-langtok"], {"target_attention": "cross"}),
    "transformer_gated_heads": (["--task", "translation", "-s", "en", "-t", "de"],
                                {"gate_heads": "encoder_self,cross", "gate_init_log_alpha": 2.0}),
    "transformer_neuron_masked": (["--task", "translation", "-s", "en", "-t", "de"], {}),
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


def _from_command_line(arch, task_flags, own, task):
    from fairseq import models, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    argv = ["DATA", *task_flags, "--arch", arch, "--share-all-embeddings"]
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
    cfg = OmegaConf.create("\n".join(["model:", f"  _name: {name}", "  share_all_embeddings: true", *lines]))
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


def _assert_same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    for key, value in sa.items():
        assert torch.equal(sb[key], value), key


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_command_line_and_yaml_with_architecture_or_model_name_build_the_same_model(model_name):
    task_flags, own = MODELS[model_name]
    task = _task()
    cli_model, cli_cfg = _from_command_line(model_name + "_test_tiny", task_flags, own, task)
    by_arch, arch_cfg = _from_yaml(model_name + "_test_tiny", own, task)
    by_model, model_cfg = _from_yaml(model_name, {**TINY, **own}, task)
    for key, value in own.items():
        assert str(getattr(cli_cfg, key)) == str(getattr(arch_cfg, key)) == str(getattr(model_cfg, key)) == str(value)
    for model in (cli_model, by_arch, by_model):  # the tiny sizes, not the base Transformer's 512-dim, 6 layers
        assert model.encoder.embed_tokens.embedding_dim == 32 and len(model.encoder.layers) == 1
        assert model.encoder.layers[0].fc1.out_features == 64
    _assert_same_model(cli_model, by_arch)
    _assert_same_model(cli_model, by_model)
    if model_name == "transformer_gated_heads":  # the gate options reached the model: gates where asked, no others
        assert cli_model.head_gates()["encoder_self"][0] is not None and by_arch.head_gates()["cross"][0] is not None
        assert by_arch.head_gates()["decoder_self"][0] is None
        assert float(by_arch.head_gates()["cross"][0].log_alpha.mean()) == pytest.approx(2.0)


def test_model_name_alone_is_the_base_transformer_as_with_arch_on_the_command_line():
    task = _task()
    cli_model, _ = _from_command_line("transformer_neuron_masked", MODELS["transformer_neuron_masked"][0], {}, task)
    yaml_model, _ = _from_yaml("transformer_neuron_masked", {}, task)
    assert yaml_model.encoder.embed_tokens.embedding_dim == 512 and len(yaml_model.encoder.layers) == 6
    _assert_same_model(cli_model, yaml_model)


@pytest.mark.parametrize("model_name", ["transformer_lang_adapter", "transformer_target_attention"])
def test_per_pair_models_train_the_same_from_yaml_and_command_line(model_name):
    task_flags, own = MODELS[model_name]
    task = _task()
    cli_model, _ = _from_command_line(model_name + "_test_tiny", task_flags, own, task)
    yaml_model, _ = _from_yaml(model_name + "_test_tiny", own, task)
    assert yaml_model.pairs == cli_model.pairs == PAIRS.split(",")
    before = {k: v.clone() for k, v in cli_model.state_dict().items()}
    cli_state = _two_updates(cli_model, task.source_dictionary)
    yaml_state = _two_updates(yaml_model, task.source_dictionary)
    assert sorted(cli_state) == sorted(yaml_state)
    for key, value in cli_state.items():
        assert torch.equal(yaml_state[key], value), key
    # the per-pair modules were trained (the comparison is not between two untouched initializations)
    per_pair = [k for k in cli_state if "adapter" in k or "copies" in k]
    assert per_pair and any(not torch.equal(before[k], cli_state[k]) for k in per_pair), sorted(cli_state)
