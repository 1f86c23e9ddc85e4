"""Progress bars and spinners on stderr (tqdm), silent when not a terminal unless forced."""

from __future__ import annotations

import contextlib
import sys
import threading
import time


def progress(iterable=None, desc: str = "", total: int | None = None, disable: bool = False, **kw):
    from tqdm.auto import tqdm

    return tqdm(
        iterable, desc=desc, total=total, disable=disable, file=sys.stderr, dynamic_ncols=True, leave=False, **kw
    )


@contextlib.contextmanager
def spinner(message: str):
    """Show elapsed seconds on stderr while a long step runs; prints the final time."""
    stop = threading.Event()
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()

    def run():
        while not stop.wait(0.5):
            if tty:
                print(f"\r{message} ... {time.perf_counter() - t0:.0f}s", end="", file=sys.stderr, flush=True)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    ok = False
    try:
        yield
        ok = True
    finally:
        stop.set()
        th.join()
        status = "done" if ok else "failed"
        print(f"{chr(13) if tty else ''}{message} ... {status} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
