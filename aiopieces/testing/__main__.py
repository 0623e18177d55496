"""`python -m aiopieces.testing --port 39300`: serve the emulator until interrupted."""

import sys

from .._cli import main

if __name__ == "__main__":
    sys.exit(main(["emulator", *sys.argv[1:]]))
