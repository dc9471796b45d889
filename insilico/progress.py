"""Progress bars for long work: a rich bar on the terminal, nothing when switched off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Tick = Callable[[int, int], None]


@contextmanager
def progress_bar(description: str, total: int | None = None, *, enabled: bool = True,
                 transient: bool = True) -> Iterator[Tick | None]:
    """Yield ``tick(done, total)`` updating a bar on stderr, or None when not `enabled`."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"  {description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=transient) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done, of: bar.update(task, completed=done, total=of)
