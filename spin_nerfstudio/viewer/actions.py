"""The panel's queue of clicks and button presses, each run with the viewer's training lock held.

Pointer callbacks are neither wrapped in the training lock nor followed by a re-render in nerfstudio 1.1.5; the
panel's own GUI callbacks are not either (they are raw viser widgets inside one element), so every handler needs the
lock and triggers the re-render itself. The training loop releases the lock for only a few bytecodes between steps
and Python's lock is not fair, so a handler blocked on it can wait for minutes while training runs. Every click and
button press is therefore queued and run by whichever thread holds the lock first: the training loop at the end of
its next step (the panel's step callback runs under the lock), or the handler's own thread when it gets the lock
(training paused or finished, ``ns-viewer``). Nothing is dropped: an action that fails gives a red notification
saying why, and one that waits longer than ``busy_notice`` seconds (a segmentation holds the lock for a while) gives
a notification that it waits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from nerfstudio.utils.rich_utils import CONSOLE

from spin_nerfstudio.viewer.panel_config import trace

Notify = Callable[..., None]
"""``notify(title, body, error=False)``: how the queue tells the user (the panel's notifications)."""


@dataclass
class Pending:
    """A click or button press of the panel, waiting for the training lock."""

    what: str
    """What it is, for notifications and the trace ("click", "Undo last", ...)."""
    action: Callable[[], Any]
    """What to do with the training lock held."""
    received: float = field(default_factory=time.time)
    """When it arrived (seconds since the epoch)."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set once it has run (or failed with a notification)."""


class ActionQueue:
    """Actions waiting for the training lock, run in order by whichever thread holds the lock first."""

    def __init__(
        self,
        lock: Callable[[], Any],
        notify: Notify,
        busy_reason: Callable[[], str],
        busy_notice: Callable[[], float],
        after: Callable[[], None],
    ) -> None:
        """``lock()`` gives the training lock (None without a trainer: actions then run at once), ``busy_reason()``
        what the trainer is doing, ``busy_notice()`` the seconds before a waiting action says so, and ``after()`` is
        called once a batch of actions has run (the panel refreshes and re-renders)."""
        self._lock = lock
        self._notify = notify
        self._busy_reason = busy_reason
        self._busy_notice = busy_notice
        self._after = after
        self._pending: List[Pending] = []
        self._pending_lock = threading.Lock()

    def run(self, fn: Callable[[], Any], what: str = "The action") -> None:
        """Run ``fn`` with the training lock held, by whichever thread gets it first; return once it has run."""
        item = Pending(what, fn)
        with self._pending_lock:
            self._pending.append(item)
        lock: Optional[Any] = self._lock()
        told = False
        while not item.done.is_set():
            if lock is None:
                self.run_pending()
            elif lock.acquire(timeout=0.05):
                try:
                    self.run_pending()
                finally:
                    lock.release()
            elif not item.done.wait(0.05) and not told and time.time() - item.received >= self._busy_notice():
                told = True
                trace(f"{what} waits for the training lock")
                self._notify(
                    f"{what} waits", f"the trainer is busy ({self._busy_reason()}); it is taken when it is free"
                )

    def run_pending(self) -> None:
        """Run the queued clicks and button presses, in order (the caller holds the training lock)."""
        with self._pending_lock:
            items, self._pending = self._pending, []
        for item in items:
            trace(f"{item.what} runs after {time.time() - item.received:.3f} s")
            try:
                item.action()
            except Exception as err:  # noqa: BLE001 - viser's worker threads would swallow it silently
                CONSOLE.print_exception()
                self._notify(f"{item.what} not taken", f"{type(err).__name__}: {err}", error=True)
            finally:
                item.done.set()
        if items:
            self._after()
