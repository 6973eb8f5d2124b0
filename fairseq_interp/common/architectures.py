"""Sizes of fairseq's ``transformer`` (and ``lstm``) for small data and CPUs.

* ``transformer_multi30k``: the demo model, 3+3 layers, 256-dim, 4 heads, FFN 512, all embeddings shared.
* ``transformer_test_tiny``: for unit tests, 1+1 layers, 32-dim, 2 heads, FFN 64.
* ``lstm_test_tiny``: for unit tests, 1-layer LSTMs with attention, 32-dim.

Each sets defaults only, so any option given on the command line still wins (fairseq's ``getattr`` pattern).
"""

from fairseq.models.lstm import base_architecture as lstm_base
from fairseq.models.transformer.transformer_legacy import base_architecture as transformer_base

from .registry import register_model_architecture, set_defaults


@register_model_architecture("transformer", "transformer_multi30k")
def transformer_multi30k(args):
    set_defaults(args, encoder_layers=3, decoder_layers=3, encoder_embed_dim=256, decoder_embed_dim=256,
              encoder_ffn_embed_dim=512, decoder_ffn_embed_dim=512, encoder_attention_heads=4,
              decoder_attention_heads=4, share_all_embeddings=True, dropout=0.1)
    transformer_base(args)


@register_model_architecture("transformer", "transformer_test_tiny")
def transformer_test_tiny(args):
    set_defaults(args, encoder_layers=1, decoder_layers=1, encoder_embed_dim=32, decoder_embed_dim=32,
              encoder_ffn_embed_dim=64, decoder_ffn_embed_dim=64, encoder_attention_heads=2,
              decoder_attention_heads=2, dropout=0.0)
    transformer_base(args)


@register_model_architecture("lstm", "lstm_test_tiny")
def lstm_test_tiny(args):
    set_defaults(args, encoder_embed_dim=32, encoder_hidden_size=32, encoder_layers=1, encoder_bidirectional=False,
              decoder_embed_dim=32, decoder_hidden_size=32, decoder_out_embed_dim=32, decoder_layers=1,
              decoder_attention="1", dropout=0.0)
    lstm_base(args)
