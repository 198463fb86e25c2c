"""``gn-detect``: the command line. Each subcommand lives in ``commands/``; this module only
parses the arguments, dispatches, and turns user errors into one ``error:`` line."""
import argparse
import sys
from typing import List, Optional

from .commands import COMMANDS, load_command
from .config import ConfigError
from .utils.errors import UserError
from .utils.logger import setup_logging
from .utils.registry import UnknownNameError

__all__ = ["main"]


def __getattr__(name: str):
    if name == "setup_cfg":  # kept for scripts that took it from here
        from .commands.common import setup_cfg

        return setup_cfg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Mistakes a user can fix: a bad config or argument, an unknown name, a missing file, and a
# diverged run (FloatingPointError: the NaN stop, with the iteration and every loss). Anything
# else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, UnknownNameError, UserError, FileNotFoundError, FloatingPointError)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` (the others left as bare names)."""
    parser = argparse.ArgumentParser(prog="gn-detect", description="Mask R-CNN with Group Normalization.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        if command not in (None, name):
            subparsers.add_parser(name)
            continue
        module = load_command(name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    setup_logging()
    try:
        return args.run(args)
    except USER_ERRORS as e:
        message = _without_worker_traceback(str(e))
        source = getattr(args, "config_file", None)
        if source and not isinstance(e, ConfigError):  # a ConfigError names the file already
            message = f"{source}: {message}"
        print(f"gn-detect {args.command}: error: {message}", file=sys.stderr)
        return 2


def _without_worker_traceback(message: str) -> str:
    """An error raised in a DataLoader worker reaches here with the worker's traceback in its
    message, whose last line is "UserError: <the message>"."""
    if "\nOriginal Traceback" not in message:
        return message
    return message.rstrip().splitlines()[-1].split(": ", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())
