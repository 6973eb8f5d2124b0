"""fairseq-interp: interpretability and sparsification of fairseq translation models.

Use as ``--user-dir fairseq_interp`` (a path to this folder) with any fairseq command. Importing the package
allow-lists the classes fairseq checkpoints pickle, so checkpoints load with torch's safe loader (torch >= 2.6),
stops fairseq's prefetch threads at exit (see ``clean_exit``: no abort after training stops mid-epoch),
and registers the plugin's architectures, criterions and tasks (idempotently: importing twice is harmless).
"""

__version__ = "0.1.0"

from . import safe_loading as _safe_loading  # noqa: E402

_safe_loading.install()

from . import clean_exit as _clean_exit  # noqa: E402

_clean_exit.install()

from . import models  # noqa: E402,F401  (registers architectures)
from . import tasks  # noqa: E402,F401  (registers tasks)
from . import criterions  # noqa: E402,F401  (registers criterions)
