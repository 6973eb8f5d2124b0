"""The classical count-table model of Snell et al. (2021, §4.1–4.3) for classification (T = 1): the view of their
Figure 5, "the classical model first learns word polarity, which later attracts attention".

Every training pair (words x_1..x_L, label y) adds 1/L to C[x_l, y] (§4.2, which equals C^px of Eq. 16); word
polarity is Trans(y | x) = C[x, y] / Σ_y' C[x, y'] (Eq. 17); β^IBM_l = Trans(y | x_l) (Eq. 18) and the attention
α^IBM_l = β^IBM_l / Σ_l' β^IBM_l' (Eq. 19). IBM Model 1 without a NULL word, after one EM iteration from uniform
translation probabilities, is exactly this table (:class:`~fairseq_interp.common.ibm1.IBM1`), so it is computed
there.
"""

import numpy as np

from ..common.errors import InterpretError
from ..common.ibm1 import IBM1


def label_token(label):
    """The output "word" of a label (the count table's column)."""
    return f"<label={label}>"


def count_table(sentences, labels):
    """The count-table model over ``sentences`` (word lists) with their ``labels``: an :class:`IBM1` whose
    ``table`` is Trans (Eq. 17) and whose ``posterior`` is α^IBM (Eq. 19)."""
    if len(sentences) != len(labels):
        raise InterpretError(f"{len(sentences)} sentences but {len(labels)} labels: pass one label per sentence")
    pairs = [(list(words), [label_token(y)]) for words, y in zip(sentences, labels) if words]
    return IBM1(null=False).fit(pairs, iterations=1)


def polarity_and_attention(model, words, label):
    """``(β^IBM, α^IBM)`` of one sentence with its label (Eq. 18–19), each of length ``len(words)``; words never
    counted have β = 0 (an empty sentence, or one whose words are all unseen, gives uniform α)."""
    beta = model.table(words, [label_token(label)])[:, 0]
    total = beta.sum()
    alpha = beta / total if total > 0 else np.full(len(words), 1.0 / max(len(words), 1))
    return beta, alpha


def polarity_strength(model, words, label):
    """The largest β^IBM of the sentence minus its mean: how far one word's polarity stands out (0 when every word
    is equally polar or unseen)."""
    beta, _ = polarity_and_attention(model, words, label)
    return float(beta.max() - beta.mean()) if len(beta) else 0.0
