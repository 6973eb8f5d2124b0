"""The baselines of Xie et al. 2021 (Tables 1-2) on tiny models: language-pair adapters (Bapna and Firat 2019),
target-specific attention (Blackwood et al. 2018), FFN expansion, and the random-neuron erasure control."""

import argparse
from types import SimpleNamespace

import pytest
import torch

import fairseq_interp  # noqa: F401  (registers the models)
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.neurons.baselines import (LangAdapterTransformerModel, TargetAttentionTransformerModel,
                                              count_parameters, expand_ffn)

PAIRS = ["en-de", "de-en", "en-fr"]  # targets de, en, fr


def _dictionary():
    from fairseq.data import Dictionary

    d = Dictionary()
    for i in range(20):
        d.add_symbol(f"w{i}")
    return d


def _args(**extra):
    from fairseq_interp.common.architectures import transformer_test_tiny

    args = argparse.Namespace(arch="transformer_test_tiny", share_all_embeddings=True, **extra)
    transformer_test_tiny(args)
    return args


def _build(cls, seed=0, **extra):
    d = _dictionary()
    torch.manual_seed(seed)
    task = SimpleNamespace(source_dictionary=d, target_dictionary=d, lang_pairs=list(PAIRS))
    return cls.build_model(_args(**extra), task).eval(), d


def _plain(seed=0, ffn=None):
    from fairseq.models.transformer import TransformerModel

    extra = {} if ffn is None else {"encoder_ffn_embed_dim": ffn, "decoder_ffn_embed_dim": ffn}
    return _build(TransformerModel, seed, **extra)


def _batch(d, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(d.nspecial, len(d), (b, 6), generator=g)
    src[:, -1] = d.eos()
    prev = torch.randint(d.nspecial, len(d), (b, 5), generator=g)
    prev[:, 0] = d.eos()
    return {"src_tokens": src, "src_lengths": torch.full((b,), 6), "prev_output_tokens": prev}


def _logits(model, batch, pair_ids=None):
    with torch.no_grad():
        if pair_ids is None:
            return model(**batch)[0]
        return model(**batch, pair_ids=torch.as_tensor(pair_ids))[0]


def test_adapters_with_zero_up_projection_equal_the_baseline():
    plain, d = _plain()
    adapter, _ = _build(LangAdapterTransformerModel, lang_adapter_dim=8)
    batch = _batch(d)
    for ids in ([0, 1, 2, 0], 1):
        torch.testing.assert_close(_logits(adapter, batch, ids), _logits(plain, batch), rtol=0, atol=0)


def test_adapters_parameter_count_and_per_pair_routing():
    plain, d = _plain()
    adapter, _ = _build(LangAdapterTransformerModel, lang_adapter_dim=8)
    # per adapter (Bapna and Firat 2019): down 32x8 + 8, up 8x32 + 32, LayerNorm 2 x 32 = 616; 2 layers x 3 pairs
    assert count_parameters(adapter) - count_parameters(plain) == 2 * 3 * (32 * 8 + 8 + 8 * 32 + 32 + 2 * 32)
    # with d = 512, r = 128 one adapter has the 132,736 parameters behind Table 1's 77.43M - 64.69M = 12.74M
    assert 2 * 512 * 128 + 128 + 512 + 2 * 512 == 132_736 and abs(12 * 8 * 132_736 - 12.74e6) < 0.01e6
    g = torch.Generator().manual_seed(5)
    for adapters in list(adapter.encoder_adapters) + list(adapter.decoder_adapters):
        adapters.up_weight.data = torch.randn(adapters.up_weight.shape, generator=g)
    batch = _batch(d)
    mixed = _logits(adapter, batch, [0, 1, 2, 1])
    single = {p: _logits(adapter, batch, p) for p in range(3)}
    for row, p in enumerate([0, 1, 2, 1]):  # each sample runs through its own pair's adapters
        torch.testing.assert_close(mixed[row], single[p][row], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(single[0], single[1])  # the pairs' adapters differ
    with pytest.raises(InterpretError, match="translation_multi_lang_specific"):
        _logits(adapter, batch)  # no pair ids: refused, never silently unadapted
    assert adapter.pairs == PAIRS and adapter.pair_index("en-fr") == 2


def _attention_copy(model, target):
    """A plain Transformer whose attention modules are ``model``'s copies for target language index ``target``."""
    plain, _ = _plain()
    state = {}
    for key, value in model.state_dict().items():
        if ".copies." in key:
            head, rest = key.split(".copies.", 1)
            index, tail = rest.split(".", 1)
            if int(index) == target:
                state[f"{head}.{tail}"] = value
        elif key != "lang_specific_pairs":
            state[key] = value
    plain.load_state_dict(state, strict=True)
    return plain


@pytest.mark.parametrize("which", ["all", "cross"])
def test_target_specific_attention_routes_each_sample_to_its_target_language(which):
    ts, d = _build(TargetAttentionTransformerModel, target_attention=which)
    plain, _ = _plain()
    assert ts.target_langs == ["de", "en", "fr"]
    # one copy of each attention module per target language: (3 - 1) extra copies of every copied module; a module
    # (q, k, v, out projections of 32x32 + 32) has 4,224 parameters; "all" copies 3 modules of the 1+1-layer
    # model (encoder self, decoder self, cross), "cross" one
    modules = 3 if which == "all" else 1
    assert count_parameters(ts) - count_parameters(plain) == 2 * modules * 4 * (32 * 32 + 32)
    batch = _batch(d)
    pair_ids = [0, 1, 2, 0]  # targets de, en, fr, de
    mixed = _logits(ts, batch, pair_ids)
    for target in range(3):
        reference = _logits(_attention_copy(ts, target), batch)
        for row, p in enumerate(pair_ids):
            if [0, 1, 2][p] == target:
                torch.testing.assert_close(mixed[row], reference[row], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(_logits(ts, batch, target), reference, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(_logits(ts, batch, 0), _logits(ts, batch, 1))


def test_expansion_keeps_the_outputs_when_the_new_units_are_zero():
    plain, d = _plain()
    wide, _ = _plain(seed=3, ffn=96)
    state = expand_ffn(plain.state_dict(), 96, seed=2)
    wide.load_state_dict(state, strict=True)
    batch = _batch(d)
    torch.testing.assert_close(_logits(wide, batch), _logits(plain, batch), rtol=1e-5, atol=1e-6)
    w1, w2 = state["encoder.layers.0.fc1.weight"], state["encoder.layers.0.fc2.weight"]
    assert w1.shape == (96, 32) and w2.shape == (32, 96)
    assert torch.equal(w1[:64], plain.state_dict()["encoder.layers.0.fc1.weight"])  # trained units kept in place
    assert w1[64:].abs().sum() > 0 and torch.equal(w2[:, 64:], torch.zeros(32, 32))  # new units: live in, zero out
    # the new units change the output as soon as their fc2 columns move
    state["encoder.layers.0.fc2.weight"][:, 64:] = 0.1
    wide.load_state_dict(state)
    assert not torch.allclose(_logits(wide, batch), _logits(plain, batch))
    with pytest.raises(InterpretError, match="only widens"):
        expand_ffn(plain.state_dict(), 32)


@pytest.mark.parametrize("cls,extra", [(LangAdapterTransformerModel, {"lang_adapter_dim": 8}),
                                       (TargetAttentionTransformerModel, {})])
def test_a_checkpoint_of_all_pairs_loads_into_a_model_built_for_one_direction(cls, extra):
    """fairseq-generate sets the task up with one direction: the per-pair modules take the checkpoint's pairs."""
    trained, d = _build(cls, seed=0, **extra)
    for p in trained.parameters():  # make every copy / adapter differ from a fresh one
        p.data.add_(0.01 * torch.randn_like(p))
    task = SimpleNamespace(source_dictionary=d, target_dictionary=d, lang_pairs=["en-fr"])
    torch.manual_seed(9)
    one = cls.build_model(_args(**extra), task).eval()
    assert one.pairs == ["en-fr"]
    one.load_state_dict(trained.state_dict(), strict=True)
    assert one.pairs == PAIRS and count_parameters(one) == count_parameters(trained)
    batch = _batch(d)
    for pair in range(3):
        torch.testing.assert_close(_logits(one, batch, pair), _logits(trained, batch, pair), rtol=0, atol=0)



@pytest.mark.parametrize("which", ["all", "cross"])
def test_target_specific_attention_caches_are_reordered_once_per_beam_step(which):
    """Beam search reorders every attention cache by ``new_order`` once per step (fairseq walks the decoder's
    modules): a copy reordered twice would hold rows of the wrong hypotheses, or index past a shrunken batch."""
    ts, d = _build(TargetAttentionTransformerModel, target_attention=which)
    for pair in (0, 2):  # the first target language's copy (the module the others were copied from), another
        _check_reordered_once(ts, d, pair)


def _check_reordered_once(ts, d, pair):
    from fairseq.modules import MultiheadAttention

    batch = _batch(d, b=4, seed=4)
    state = {}
    with ts.using_pairs(torch.tensor(pair)), torch.no_grad():
        encoder_out = ts.encoder(batch["src_tokens"], src_lengths=batch["src_lengths"])
        ts.decoder(batch["prev_output_tokens"][:, :1], encoder_out=encoder_out, incremental_state=state)
        attention, before = [], []  # the modules that ran (the other target languages' copies hold no cache)
        for module in ts.decoder.modules():
            if isinstance(module, MultiheadAttention) and module._get_input_buffer(state):
                attention.append(module)
                before.append({k: v.clone() for k, v in module._get_input_buffer(state).items() if v is not None})
        assert len(attention) == 2  # the decoder layer's self and cross attention
        # a cycle (applying it twice differs from once), then finished sentences dropped (the batch shrinks);
        # fairseq leaves encoder-decoder caches alone while the batch keeps its size
        for order in (torch.tensor([1, 2, 3, 0]), torch.tensor([3, 1])):
            ts.decoder.reorder_incremental_state_scripting(state, order)
            for i, module in enumerate(attention):
                if module.encoder_decoder_attention and len(order) == len(next(iter(before[i].values()))):
                    continue
                before[i] = {key: value.index_select(0, order) for key, value in before[i].items()}
                after = module._get_input_buffer(state)
                for key, value in before[i].items():
                    torch.testing.assert_close(after[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("which", ["all", "cross"])
def test_target_specific_attention_beam_search_equals_its_copy_as_a_plain_model(which):
    """Incremental decoding with beam reordering: the +TS model translating into one target language gives the
    hypotheses and scores of a plain Transformer holding that language's attention copies (each cache reordered
    once per step)."""
    from fairseq.sequence_generator import SequenceGenerator

    ts, d = _build(TargetAttentionTransformerModel, target_attention=which)
    for p in ts.parameters():  # copies that differ from each other
        p.data.add_(0.05 * torch.randn_like(p))
    batch = _batch(d, b=5, seed=4)
    sample = {"net_input": {"src_tokens": batch["src_tokens"], "src_lengths": batch["src_lengths"]}}
    for pair, target in ((0, 0), (2, 2)):  # en-de -> copy of de (the first), en-fr -> copy of fr
        generator = SequenceGenerator([ts], d, beam_size=4, max_len_b=8)
        with ts.using_pairs(torch.tensor(pair)), torch.no_grad():
            got = generator.generate([ts], sample)
        plain = _attention_copy(ts, target)
        with torch.no_grad():
            want = SequenceGenerator([plain], d, beam_size=4, max_len_b=8).generate([plain], sample)
        for g, w in zip(got, want):
            assert [h["tokens"].tolist() for h in g] == [h["tokens"].tolist() for h in w]
            torch.testing.assert_close(torch.stack([h["score"] for h in g]), torch.stack([h["score"] for h in w]),
                                       rtol=1e-5, atol=1e-5)
