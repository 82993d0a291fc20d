"""A sha256 computed on a thread of its own, so hashing a member overlaps its decompression and writing.

An import hashes each disk member twice (its stored and its decompressed bytes) while it
decompresses, decodes and writes it; on one thread the two hashes were a third of the CPU time of
an import. ``hashlib`` releases the GIL on large buffers, so each hash here runs beside the rest.
Only immutable ``bytes`` may be fed: the thread reads them later.
"""

from __future__ import annotations

import hashlib
import queue
import threading

_DEPTH = 8  # chunks waiting to be hashed (of about 1 MiB each)


class ThreadedSha256:
    """``update`` queues a chunk; :meth:`hexdigest` waits for the thread and gives the digest (any number of times)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._digest: str | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self._digest is not None:
            raise ValueError("the digest was already taken")
        if chunk:
            self._queue.put(chunk)

    def hexdigest(self) -> str:
        if self._digest is None:
            self.close()
            self._digest = self._sha.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the thread (after what was queued); safe to call more than once."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
