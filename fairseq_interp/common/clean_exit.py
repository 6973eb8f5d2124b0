"""Clean interpreter exit for fairseq commands stopped mid-epoch (e.g. at ``--max-update``).

fairseq prefetches batches in a daemon thread (``fairseq.data.iterators.BackgroundConsumer``, on by default:
``--data-buffer-size 10``). When training stops mid-epoch that thread is still unpickling batches from the
DataLoader worker. CPython ends daemon threads at finalization with ``pthread_exit`` as soon as they try to
take the GIL; when that happens inside torch's C++ tensor destructor, the forced unwind meets a ``noexcept``
frame and the whole process aborts ("terminate called without an active exception", exit code 134) *after*
training finished, under load now and then. This module registers an ``atexit`` hook that stops those
threads while the interpreter is still whole: each is told to stop after the batch it is producing, and its
queue is drained until it exits.
"""

import atexit
import queue
import threading
import time

_MARK = "_fairseq_interp_clean_exit_installed"


def stop_background_consumers(timeout: float = 30.0) -> int:
    """Stop fairseq's live prefetch threads; return how many were stopped before ``timeout`` seconds."""
    try:
        from fairseq.data.iterators import BackgroundConsumer
    except ImportError:
        return 0
    deadline = time.monotonic() + timeout
    stopped = 0
    for thread in threading.enumerate():
        if not isinstance(thread, BackgroundConsumer) or thread is threading.current_thread():
            continue
        thread._max_len = 0  # its loop breaks after the next put and posts the end sentinel
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                thread._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        stopped += not thread.is_alive()
    return stopped


def install() -> None:
    """Register the exit hook once per process (importing the plugin under two names registers it once)."""
    from fairseq.data import iterators

    if getattr(iterators, _MARK, False):
        return
    setattr(iterators, _MARK, True)
    atexit.register(stop_background_consumers)
