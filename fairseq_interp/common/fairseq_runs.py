"""Running fairseq's commands (and this plugin's) as processes of their own, for drivers that chain them:
reproduction scripts, data preparation, benchmarks. One place for the environment they run in, their logs, the error
a failure gives, and resumable training.
"""

import contextlib
import os
import signal
import sys
import threading
import time

from .checkpoints import checkpoint_updates
from .errors import InterpretError
from .launcher import launch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def console_script(name):
    """The path of a console script (``fairseq-train``, ``fairseq-interp``, ...) of this Python environment."""
    return os.path.join(os.path.dirname(sys.executable), name)


def _executable(cmd):
    first = cmd[0]
    if os.path.isabs(first) or os.sep in first or first == sys.executable:
        return list(cmd)
    return [console_script(first), *cmd[1:]]


#: where a driver's fairseq commands run: ``cpu`` (fairseq's ``--cpu``) or ``cuda`` (fairseq's default device)
DEVICES = ("cpu", "cuda")


def add_device_argument(parser):
    """``--device`` of a driver: where the fairseq commands it chains run."""
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="cpu: every fairseq command gets --cpu (as tested here); cuda: none does, so fairseq "
                             "uses the GPU (full-scale runs). Not one of the settings --resume compares: records "
                             "made on either device can be continued on the other (default: %(default)s)")


def device_flags(args):
    """The device option of the fairseq commands a driver runs: ``["--cpu"]`` for ``--device cpu``, none for
    ``cuda``, which is refused in one line on a machine without a CUDA device."""
    device = getattr(args, "device", "cpu")
    if device == "cpu":
        return ["--cpu"]
    import torch

    if not torch.cuda.is_available():
        raise InterpretError("--device cuda: this machine has no CUDA device (torch.cuda.is_available() is False); "
                             "run on a GPU machine or with --device cpu")
    return []


@contextlib.contextmanager
def stopped_with_this_process():
    """While the block runs, SIGTERM to this process (``kill``, ``pkill``, a job scheduler's stop) raises
    ``SystemExit`` here instead of ending the interpreter at once, so :func:`~.launcher.launch` kills the command it
    waits for before this process exits; otherwise a stopped driver would leave its ``fairseq-train`` running and
    writing checkpoints. Only in the main thread (the one that receives signals); the previous handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(cmd, log=None, cwd=None, threads=None, tail=3000):
    """Run ``cmd`` (a console script name of this environment, or a path) and return its stdout + stderr. A console
    script is forked from a server that has imported torch and fairseq once (:func:`~.launcher.launch`).

    ``threads``: OMP_NUM_THREADS for the command (None: as in this process's environment). ``log``: also write
    the output there. A failure raises :class:`InterpretError` in one line: the command, its exit code, the last
    line of its stderr (``fairseq-interp: error: ...`` for the plugin's commands) and the file holding its whole
    output (``log``, else a temporary file; ``tail``: characters of stderr kept there). A SIGTERM to this process
    stops the command too (:func:`stopped_with_this_process`).
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    full = _executable(cmd)
    with stopped_with_this_process():
        proc = launch(full, cwd=cwd, env=env)
    output = proc.stdout + proc.stderr
    if log:
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        with open(log, "w", encoding="utf-8") as f:
            f.write(output)
    if proc.returncode:
        if not log:
            import tempfile

            with tempfile.NamedTemporaryFile("w", suffix=".log", prefix="fairseq-interp-", delete=False,
                                             encoding="utf-8") as f:
                f.write(f"$ {' '.join(full)}\n{proc.stdout}{proc.stderr[-tail:]}")
            log = f.name
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        name = " ".join([os.path.basename(full[0])] + [a for a in full[1:2] if not a.startswith("-")])
        raise InterpretError(f"{name} failed (exit {proc.returncode}): {lines[-1] if lines else 'no error output'} "
                             f"(its whole output: {log})")
    return output


def train(save_dir, updates, train_args, threads=None):
    """``fairseq-train TRAIN_ARGS --save-dir SAVE_DIR --max-update UPDATES`` unless ``SAVE_DIR/checkpoint_last.pt``
    already holds ``updates`` updates; an interrupted run continues from its last checkpoint (fairseq's own
    resume). The log goes to ``SAVE_DIR/train.log``. Returns ``(checkpoint, seconds or None when nothing ran)``."""
    ckpt = os.path.join(save_dir, "checkpoint_last.pt")
    if checkpoint_updates(ckpt) >= updates:
        return ckpt, None
    os.makedirs(save_dir, exist_ok=True)
    start = time.time()
    run(["fairseq-train", *train_args, "--max-update", str(updates), "--save-dir", save_dir],
        log=os.path.join(save_dir, "train.log"), threads=threads)
    return ckpt, time.time() - start


def patience_args(validate_every, patience, log_file):
    """fairseq-train options of a training run to convergence: validate and save every ``validate_every`` updates,
    stop after ``patience`` validations without a lower valid loss (fairseq's ``--patience``), keep
    ``checkpoint_best.pt`` by valid loss, and log JSON records (:func:`valid_curve`) to ``log_file``."""
    return ["--no-epoch-checkpoints", "--save-interval-updates", str(validate_every), "--keep-interval-updates", "1",
            "--validate-interval-updates", str(validate_every), "--validate-interval", "1000",
            "--patience", str(patience), "--best-checkpoint-metric", "loss",
            "--log-format", "json", "--log-interval", "100", "--no-progress-bar", "--log-file", log_file]


def patience_stop(curve, patience):
    """The update at which fairseq's ``--patience`` ends a training that validated ``curve`` (``[(update, valid
    loss, ...)]`` in order) without interruption: the first validation that is the ``patience``-th in a row without
    a valid loss lower than every earlier one (``fairseq_cli.train.should_stop_early``); None if none is."""
    best, runs = None, 0
    for update, loss, *_ in curve:
        if best is None or loss < best:
            best, runs = loss, 0
        else:
            runs += 1
            if runs >= patience:
                return update
    return None


def converge(train_cmd, save_dir, log_file, validate_every, patience, max_update, run_log=None, threads=None):
    """Run ``TRAIN_CMD`` (``["fairseq-train", ...]``) with :func:`patience_args`, ``--max-update MAX_UPDATE`` and
    ``--save-dir SAVE_DIR`` until ``patience`` validations without a lower valid loss or ``max_update`` updates,
    unless it has ended; an interrupted training continues from its last checkpoint and stops where the
    uninterrupted one would (:func:`patience_stop` on the logged curve). fairseq keeps its count of validations
    without improvement in memory only, so a continued run counts from its first validation again: it is run in
    segments, each ending by ``--max-update`` at the latest update the rule allows (the best update so far +
    ``patience`` × ``validate_every``), until the curve meets the rule. ``run_log``: the last segment's output.
    Returns the seconds spent training (0 when nothing ran)."""
    ckpt = os.path.join(save_dir, "checkpoint_last.pt")
    seconds = 0.0
    while True:
        done = checkpoint_updates(ckpt)
        curve = [point for point in valid_curve(log_file) if point[0] <= done]
        stop = patience_stop(curve, patience)
        if done >= max_update or stop is not None:
            return seconds
        cap = max_update
        if done:  # continued: fairseq's count restarts, so the rule's next stop caps the segment
            best_update = min(curve, key=lambda point: point[1])[0] if curve else None  # first of equal losses
            if best_update is None or best_update + patience * validate_every <= done:
                raise InterpretError(f"{log_file} lacks the validations up to update {done} of {ckpt}: cannot tell "
                                     f"where --patience {patience} stops; train into another folder")
            cap = min(max_update, best_update + patience * validate_every)
        started = time.time()
        os.makedirs(save_dir, exist_ok=True)
        run([*train_cmd, *patience_args(validate_every, patience, log_file), "--max-update", str(cap),
             "--save-dir", save_dir], log=run_log, threads=threads)
        seconds += time.time() - started
        if checkpoint_updates(ckpt) < cap:  # fairseq stopped it before the cap: its own --patience (or its rules)
            return seconds


def validation_records(log_path):
    """The JSON validation records of a fairseq log file (``--log-format json``), in order."""
    import json

    records = []
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            start = line.find("{")
            if start < 0 or '"valid_loss"' not in line:
                continue
            try:
                records.append(json.loads(line[start:]))
            except ValueError:
                continue
    return records


def valid_curve(log_path):
    """[(update, valid loss, valid BLEU or None)] of the validation records of a fairseq ``--log-format json``
    ``--log-file`` (one JSON object per line with ``valid_loss``; the last record of an update wins)."""
    curve = {}
    if not os.path.exists(log_path):
        return []
    for record in validation_records(log_path):
        bleu = record.get("valid_bleu")
        curve[int(float(record["valid_num_updates"]))] = (float(record["valid_loss"]),
                                                          None if bleu is None else float(bleu))
    return [(u, *curve[u]) for u in sorted(curve)]


def stopped_by(updates, max_update):
    """``patience`` when fairseq's ``--patience`` ended a training (fewer updates than the cap), else ``cap``."""
    return "patience" if updates < max_update else "cap"


def check_driver_records(paths, resume=False, overwrite=False, what="runs", option="--results-path"):
    """Refuse record files of ``paths`` that already hold records, unless ``resume`` or ``overwrite``."""
    for path in paths:
        if os.path.exists(path) and os.path.getsize(path) > 0 and not (resume or overwrite):
            raise InterpretError(f"{path} already holds {what}: pass --resume to continue them, --overwrite to start "
                                 f"again, or choose another {option}")


@contextlib.contextmanager
def driver_records(path, config, command, resume=False, overwrite=False, what="runs", option="--results-path"):
    """The record file of a driver (one JSON record per finished run, each carrying the driver's ``config``) as a
    :class:`~.jsonl.JsonlWriter`, under a lock (:func:`~.outputs.output_lock`): existing records are continued only
    with ``resume`` and only if every one was made with ``config``, replaced only with ``overwrite``."""
    from .jsonl import JsonlWriter, read_records
    from .outputs import check_output_folder, output_lock

    folder = os.path.dirname(os.path.abspath(path))
    check_output_folder(folder, option)
    os.makedirs(folder, exist_ok=True)
    with output_lock(folder, os.path.basename(path), command, option):
        check_driver_records([path], resume, overwrite, what, option)
        if os.path.exists(path) and not resume:
            os.remove(path)
        writer = JsonlWriter(path, resume=resume)
        try:
            if writer.done_ids and any(r.get("config") != config for r in read_records(path)):
                raise InterpretError(f"{path} holds {what} made with other settings: resume with the options they "
                                     f"were made with, or choose another {option}")
            yield writer
        finally:
            writer.close()


def script_main(name, main):
    """Run a driver's ``main()`` with fairseq's log format on stdout, as ``fairseq-train`` logs (its progress and
    summaries go through ``logging``; the tables it prints stay on stdout and in its results files); an
    :class:`InterpretError` becomes ``NAME: error: ...`` and exit code 2."""
    from .cli import configure_logging, run_command

    configure_logging(sys.stdout)
    return run_command(name, main, logging_setup=False)
