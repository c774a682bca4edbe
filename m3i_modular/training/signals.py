"""SIGINT / SIGTERM during training: stop after the current step with a checkpoint; a second Ctrl-C exits at
once. The trainer reads `StopSignals.received` once per step (and shares it with the other ranks)."""
import contextlib
import signal
import threading

from ..errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_signals(worker_id: int = 0) -> None:
    """A DataLoader worker's init: leave SIGINT / SIGTERM to the main process, which stops the workers after its
    checkpoint (a Ctrl-C reaches every process of the terminal's group; a worker dead of it fails the step)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    def __init__(self):
        self.received = 0  # the first SIGINT / SIGTERM received while installed (0: none)

    def _handle(self, signum, frame) -> None:
        if not self.received:
            self.received = signum
        elif signum == signal.SIGINT:
            raise Interrupted(signum)  # the second Ctrl-C: exit now, no checkpoint
        # else: a SIGTERM after the first signal (torchrun passing a Ctrl-C on): already stopping

    @contextlib.contextmanager
    def installed(self):
        """Handle SIGINT / SIGTERM inside the block, restoring the previous handlers after it. Only the main
        thread may install handlers: elsewhere the block runs with the defaults."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
