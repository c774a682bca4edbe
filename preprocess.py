#!/usr/bin/env python
"""Raw data -> shards and tokenizer files: `python preprocess.py <command> --help`.

Each command lives in its own module with `add_parser(subparsers)`, which registers its arguments and
sets `run=fn(args)`; adding a command is one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from m3i_modular.errors import ConfigError, DataError

COMMANDS = [
    "m3i_modular.preprocess.tokenizer",
    "m3i_modular.preprocess.text",
    "m3i_modular.preprocess.images",
    "m3i_modular.preprocess.audio",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="preprocess.py", description=__doc__.splitlines()[0])
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module that registers extra components (tokenizers, ...)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    args = parser.parse_args(argv)
    try:
        for module in args.imports:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise ConfigError(f"cannot import '{module}' given to --import ({e})") from None
        args.run(args)
    except (ConfigError, DataError) as e:
        print(f"preprocess.py {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"preprocess.py {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
