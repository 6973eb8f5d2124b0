"""Attribution results in Python: one record (:class:`Attribution`) or several (:class:`Attributions`) of the same
JSONL schema ``fairseq-interpret`` writes (:mod:`.records`), with views for people.

* ``.show()``: the HTML view in a Jupyter notebook (``_repr_html_``: also what a cell displays), the text view of
  ``fairseq-interp view`` in a terminal;
* ``.plot(ax=None, rows="source")``: the word contribution heatmap into matplotlib axes (a paper figure's panel);
* ``.word_importance``, ``.word_contributions``, ... as numpy arrays, ``.to_dataframe()`` when pandas is installed;
* ``.save(path)`` / :func:`load`: the JSONL file, written and read by the same code as the command line's
  (:class:`~fairseq_interp.common.jsonl.JsonlWriter`, :func:`~fairseq_interp.common.jsonl.read_records`), so a
  saved file is an ``attributions.jsonl`` every ``fairseq-interp`` subcommand reads.
"""

import os

from ..common.errors import InterpretError


def in_notebook():
    """True inside a Jupyter kernel (where HTML output is displayed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _array(values):
    import numpy as np

    return None if values is None else np.asarray(values, dtype=float)


def _pandas():
    try:
        import pandas
    except ImportError:
        raise InterpretError("to_dataframe needs pandas (pip install pandas); the numpy arrays are "
                             ".word_importance, .word_contributions and .prefix_word_contributions") from None
    return pandas


class _Views:
    """What a single record and a list of them both offer."""

    def _records(self):
        raise NotImplementedError

    def show(self):
        """HTML in a notebook, the text view elsewhere."""
        if in_notebook():
            from IPython.display import HTML, display

            display(HTML(self._repr_html_()))
        else:
            print(self.text(), end="")

    def text(self):
        """The text view (``fairseq-interp view``)."""
        from .views.text import render

        return render(self._records())

    def _repr_html_(self):
        from .views.html import render_fragment

        return render_fragment(self._records())

    def html(self, path, title="fairseq-interp attributions", overwrite=False):
        """Write the self-contained HTML page (``fairseq-interp html``) to ``path``."""
        from .views.html import write_html

        _refuse_existing(path, overwrite)
        write_html(self._records(), path, title)
        return path

    def save(self, path, overwrite=False):
        """Write the records to ``path`` as JSONL (the ``attributions.jsonl`` schema), refusing an existing file
        unless ``overwrite``."""
        from ..common.jsonl import JsonlWriter

        _refuse_existing(path, overwrite)
        if overwrite and os.path.exists(path):
            os.remove(path)
        with JsonlWriter(path) as writer:
            for record in self._records():
                writer.write(record)
        return path


def _refuse_existing(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise InterpretError(f"{path} already exists: pass overwrite=True or choose another path")


class Attribution(_Views):
    """The attribution of one sentence: ``record`` is its JSONL record (a dict)."""

    def __init__(self, record):
        self.record = record

    def _records(self):
        return [self.record]

    def __repr__(self):
        r = self.record
        return (f"<Attribution {r['id']}: {r.get('method')} of {' '.join(r['src_words'][:-1])!r} → "
                f"{' '.join(r['tgt_words'][:-1])!r}>")

    @property
    def id(self):
        return self.record["id"]

    @property
    def src_words(self):
        """Source words, ``</s>`` last."""
        return self.record["src_words"]

    @property
    def tgt_words(self):
        """Attributed target words, ``</s>`` last."""
        return self.record["tgt_words"]

    @property
    def word_importance(self):
        """(source words without ``</s>``,) array."""
        return _array(self.record["word_importance"])

    @property
    def word_contributions(self):
        """(source words, target words) array, or None for word-level methods."""
        return _array(self.record.get("word_contributions"))

    @property
    def contributions(self):
        """(source tokens, target tokens) array, or None for word-level methods."""
        return _array(self.record.get("contributions"))

    @property
    def prefix_word_contributions(self):
        """(prefix words, target words) array of a target-prefix attribution, else None."""
        return _array(self.record.get("prefix_word_contributions"))

    def plot(self, ax=None, rows="source", title=None, colorbar=True):
        """Draw the word contribution heatmap into ``ax`` (a new figure when None); return the axes.
        ``rows``: ``source``, ``prefix`` or ``all`` (a target-prefix record's rows under the source rows)."""
        from .views.heatmap import draw_record

        return draw_record(self.record, ax=ax, rows=rows, title=title, colorbar=colorbar)

    def to_dataframe(self):
        """The word contribution matrix as a pandas DataFrame (rows: source words, then the prefix words of a
        target-prefix record, under a ``side`` index level; columns: target words); for word-level methods the
        word importance (one column). Needs pandas."""
        pandas = _pandas()
        r = self.record
        if r.get("word_contributions") is None:
            return pandas.DataFrame({"importance": r["word_importance"]},
                                    index=pandas.Index(r["src_words"][:len(r["word_importance"])], name="word"))
        sides = [("source", w) for w in r["src_words"]] + [("prefix", w) for w in r.get("prefix_words") or []]
        rows = r["word_contributions"] + (r.get("prefix_word_contributions") or [])
        index = pandas.MultiIndex.from_tuples(sides, names=["side", "word"])
        return pandas.DataFrame(rows, index=index, columns=pandas.Index(r["tgt_words"], name="target word"))


class Attributions(list, _Views):
    """Several :class:`Attribution` objects (a list), shown, saved and tabulated together."""

    def _records(self):
        return [a.record for a in self]

    def __repr__(self):
        return f"<Attributions: {len(self)} sentence(s)>"

    def plot(self, *args, **kwargs):
        """The heatmap of the only sentence (index one of several: ``results[i].plot(...)``)."""
        if len(self) != 1:
            raise InterpretError(f"{len(self)} sentences: plot one of them, e.g. results[0].plot()")
        return self[0].plot(*args, **kwargs)

    def to_dataframe(self):
        """One long table: a row per (sentence, source or prefix word, target word) with its contribution, or
        per (sentence, word) with its importance for word-level methods. Needs pandas."""
        pandas = _pandas()
        rows = []
        for a in self:
            r = a.record
            if r.get("word_contributions") is None:
                rows += [{"id": r["id"], "word_index": i, "word": w, "importance": v}
                         for i, (w, v) in enumerate(zip(r["src_words"], r["word_importance"]))]
                continue
            blocks = [("source", r["src_words"], r["word_contributions"])]
            if r.get("prefix_word_contributions") is not None:
                blocks.append(("prefix", r["prefix_words"], r["prefix_word_contributions"]))
            for side, words, matrix in blocks:
                for i, (w, row) in enumerate(zip(words, matrix)):
                    rows += [{"id": r["id"], "side": side, "word_index": i, "word": w, "target_index": j,
                              "target_word": t, "contribution": v}
                             for j, (t, v) in enumerate(zip(r["tgt_words"], row))]
        return pandas.DataFrame(rows)


def load(path):
    """The records of a JSONL file (``fairseq-interpret``'s or :meth:`Attributions.save`'s) as
    :class:`Attributions`."""
    from ..common.jsonl import read_records

    if not os.path.isfile(path):
        raise InterpretError(f"{path} not found: pass an attributions.jsonl")
    return Attributions(Attribution(r) for r in read_records(path))


Attributions.load = staticmethod(load)
