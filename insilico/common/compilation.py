"""Compiled numerics that give the same numbers whether freshly compiled or loaded from a cache.

PyTensor's numba backend (what nutpie samples with) compiles with LLVM fast-math flags by
default. Fast-math lets LLVM reassociate floating-point arithmetic, and how much it does so
depends on what it can see at once: a graph compiled from scratch is optimised across the
functions it inlines, while a graph whose pieces come from PyTensor's on-disk cache
(``~/.pytensor/numba``) links them as already-compiled code. The two round differently, and
a NUTS trajectory amplifies a last-bit difference into different draws. Measured on the
Rotterdam generator (2 chains x 100 draws): two empty-cache fits agreed with each other and
disagreed with every warm-cache fit; with fast-math off, cold, warm and a second empty cache
gave bit-identical posteriors, at the same sampling time (64-72 s for 2 x 800 iterations).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: the PyTensor settings every model we compile is compiled under
REPRODUCIBLE_FLAGS = {"numba__fastmath": False}


@contextmanager
def reproducible_compilation() -> Iterator[None]:
    """Compile PyTensor graphs (PyMC models, nutpie) inside this block for cache-independent numbers."""
    import pytensor

    with pytensor.config.change_flags(**REPRODUCIBLE_FLAGS):
        yield
