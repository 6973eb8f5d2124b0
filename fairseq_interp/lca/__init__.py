"""Learning dynamics by loss change allocation (Zhu et al.; Lan et al. 2019): LCA recorded during ``fairseq-train``
per parameter group and frequency bucket, approximate or exact, resumable record files, figures.

Importing the package registers the task ``translation_lca``.
"""

from . import task  # noqa: F401  (registers translation_lca)
