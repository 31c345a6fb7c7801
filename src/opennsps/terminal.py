"""Rich consoles for the command line: wide when piped, never wrapping plain messages."""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 200


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPED_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)
