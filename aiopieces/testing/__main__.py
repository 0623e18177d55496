"""`python -m aiopieces.testing --port 39300 [--shape schema] [--version-text 10.1.2]`: serve the
emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._catalog import SHAPES, Shape
from ._emulator import DEFAULT_VERSION, PiecesOSEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopieces.testing", description="Serve the PiecesOS emulator until Ctrl-C."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=39300)
    parser.add_argument("--download-interval", type=float, default=0.2)
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="pieces",
        help="pieces: what PiecesOS really sends (default); schema: schema-complete",
    )
    parser.add_argument(
        "--version-text",
        default=DEFAULT_VERSION,
        help=f"what GET /.well-known/version answers (default: {DEFAULT_VERSION})",
    )
    return parser


async def serve(
    host: str, port: int, interval: float, shape: Shape, version: str = DEFAULT_VERSION
) -> None:
    """Serve an emulator until cancelled; prints one line once it is listening."""
    emulator = PiecesOSEmulator(download_interval=interval, shape=shape, version=version)
    url = await emulator.start(host, port)
    print(
        f"PiecesOS emulator serving {len(emulator.models)} models on {url} ({shape} shape)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; returns the exit status (130 on Ctrl-C, 1 if it cannot listen)."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(
            serve(args.host, args.port, args.download_interval, args.shape, args.version_text)
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
