"""Progress bars for people, behind the library's ``progress(done, total)`` callbacks.

Library functions only call callbacks; the user-facing layers (the ``afmio`` command and
the ``.afm`` accessor methods, when asked with ``progress=True``) turn them into a tqdm
bar: a widget in Jupyter, a text bar in a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[int, int], None]


@contextmanager
def progress_callback(
    progress: bool | Progress | None, desc: str = "", unit: str = "frame"
) -> Iterator[Progress | None]:
    """Yield the callback to hand to a writer for ``progress``.

    ``True`` draws a bar that lives as long as the ``with`` block; a callable is passed
    through unchanged; ``None`` or ``False`` means no progress reporting.
    """
    if not progress:
        yield None
        return
    if callable(progress):
        yield progress
        return
    # Imported here, not at module level: tqdm.auto warns in a notebook without ipywidgets,
    # which must not happen on ``import afmio``, only when a bar is asked for.
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit=unit, total=None, leave=True, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
