"""Run a generator one item ahead in a background thread (reading overlaps writing)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def prefetched(items: Iterator, help=None):
    """``with prefetched(gen, help) as ready:`` iterate ``gen`` run by a background thread
    one item ahead, so reading the file overlaps the database's work (psycopg releases the
    GIL while it waits for the server). While the next item waits to be taken, the thread
    calls ``help(item)`` for a callable that updates the item (stored only if the item is
    still not taken), until help returns None. The thread's exceptions are raised in the
    consumer; leaving the block early stops the thread."""
    cond = threading.Condition()
    empty = object()
    state = {"pending": empty, "finished": False, "error": None, "stop": False}

    def wait_taken(item) -> bool:
        while help is not None:
            with cond:
                if state["pending"] is not item or state["stop"]:
                    break
            store = help(item)
            if store is None:
                break
            with cond:
                if state["pending"] is item:
                    store()
        with cond:
            while state["pending"] is item and not state["stop"]:
                cond.wait()
            return not state["stop"]

    def produce():
        try:
            for item in items:
                with cond:
                    state["pending"] = item
                    cond.notify_all()
                if not wait_taken(item):
                    return
        except BaseException as exc:   # handed to the consumer, raised there
            state["error"] = exc
        finally:
            with cond:
                state["finished"] = True
                cond.notify_all()

    def consume():
        while True:
            with cond:
                while state["pending"] is empty and not state["finished"]:
                    cond.wait()
                item = state["pending"]
                if item is empty:
                    if state["error"] is not None:
                        raise state["error"]
                    return
                state["pending"] = empty
                cond.notify_all()
            yield item

    thread = threading.Thread(target=produce, name="pgallery-read-embeddings", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        thread.join()
