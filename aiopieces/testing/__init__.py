"""Test helpers: a faithful PiecesOS emulator, and a pytest plugin that serves it.

The emulator speaks like PiecesOS by default (`shape="pieces"`: fields the schema
requires but PiecesOS leaves out are left out); `shape="schema"` serves the
schema-complete shape the official SDK can decode.

Needs only aiopieces' own dependencies; the pytest plugin (`aiopieces.testing.plugin`)
is registered through the `pytest11` entry point and loads when pytest runs.
"""

from ._catalog import SHAPES, Shape, default_catalog, is_llm
from ._emulator import (
    DEFAULT_VERSION,
    DUPLICATE_KEY_FIELDS,
    PIECES_OS_PORTS,
    PiecesOSEmulator,
    serve_emulator,
)

__all__ = [
    "DEFAULT_VERSION",
    "DUPLICATE_KEY_FIELDS",
    "PIECES_OS_PORTS",
    "SHAPES",
    "PiecesOSEmulator",
    "Shape",
    "default_catalog",
    "is_llm",
    "serve_emulator",
]
