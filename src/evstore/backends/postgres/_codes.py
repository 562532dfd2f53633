"""The numbers the SQL functions and the Python side agree on."""

from __future__ import annotations

__all__ = [
    "ANY",
    "NO_STREAM",
    "STATUS_DUPLICATE",
    "STATUS_ERROR",
    "STATUS_EXPECTATION",
    "STATUS_NOT_FOUND",
    "STATUS_OK",
    "STATUS_RETRY",
    "STREAM_EXISTS",
]

# How the functions receive a symbolic expected version (integers are passed as they are).
ANY = -1
NO_STREAM = -2
STREAM_EXISTS = -3

# Status codes returned by evstore_write / evstore_append / evstore_link.
STATUS_OK = 0
STATUS_EXPECTATION = 1
"""The expectation failed; the row carries the stream's state for the Python-side check."""
STATUS_DUPLICATE = 2
"""An event id is already stored / already in the target; ``detail`` names it."""
STATUS_RETRY = 3
"""A lock wait timed out or deadlocked; nothing was written, run the call again."""
STATUS_NOT_FOUND = 4
"""Link: ``detail`` lists the unknown event ids, comma separated."""
STATUS_ERROR = 9
"""Anything else; ``detail`` is ``SQLSTATE: message``."""
