"""Test helpers: a faithful PiecesOS emulator, and a pytest plugin that serves it.

Needs only aiopieces' own dependencies; the pytest plugin (`aiopieces.testing.plugin`)
is registered through the `pytest11` entry point and loads when pytest runs.
"""

from ._catalog import default_catalog, is_llm
from ._emulator import DUPLICATE_KEY_FIELDS, PiecesOSEmulator, serve_emulator

__all__ = [
    "DUPLICATE_KEY_FIELDS",
    "PiecesOSEmulator",
    "default_catalog",
    "is_llm",
    "serve_emulator",
]
