"""Helpers for background tasks whose outcome nobody may await."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["abandon", "retrieve"]


def retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished task's failure as seen (a done callback), so asyncio does not report
    it as never retrieved: its caller got it another way, or no longer wants it."""
    if not task.cancelled():
        task.exception()


def abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a task whose result will not be used, and drop whatever it ends with."""
    if task.get_loop().is_closed():
        # Nothing runs there any more (an iterator collected after its store's loop
        # closed): the task will never end, and there is nothing to cancel it with.
        return
    task.cancel()
    task.add_done_callback(retrieve)
