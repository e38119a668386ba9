"""`python -m facecast.server [serve options]`: the same as `facecast serve`."""

import sys

from facecast.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
