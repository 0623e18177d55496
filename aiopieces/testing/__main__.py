"""`python -m aiopieces.testing --port 39300`: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from ._emulator import PiecesOSEmulator


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the emulator until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m aiopieces.testing", description="Serve a PiecesOS emulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=39300, help="port (default: %(default)s)")
    parser.add_argument(
        "--download-interval",
        type=float,
        default=0.2,
        help="seconds between progress events (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    async def serve() -> None:
        emulator = PiecesOSEmulator(download_interval=args.download_interval)
        url = await emulator.start(args.host, args.port)
        print(f"PiecesOS emulator serving {len(emulator.models)} models on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
