"""The `oh-lsp` command line: the usage guide's commands (docs/guide-compat.md#cli), on the project's durable store.

Exit codes: 0 ok, 1 a failed task or a runtime error, 2 a usage or configuration error, 3 nothing can run now (every
model cooling down past a near reset; the tasks stay queued: `cli/waiting.py`).

`parser.py` declares the commands, `commands.py` maps each to its handler (one module per group of commands), and
`common.py` holds what they share. `oh-lsp serve` loads none of the handlers: it starts the language server.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from oh_lsp.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":  # the language server keeps its start-up lean: no CLI command imports
        from oh_lsp.lsp.server import serve

        return serve(tcp=args.tcp, verbose=args.verbose)
    from oh_lsp.cli.commands import COMMANDS
    from oh_lsp.cli.common import EXIT_FAILED, EXIT_USAGE, UsageError, say
    from oh_lsp.errors import OhLspError

    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        say(f"oh-lsp {args.command}: {exc}", err=True)
        return EXIT_USAGE
    except OhLspError as exc:
        say(f"oh-lsp {args.command}: {exc}", err=True)
        return EXIT_USAGE if isinstance(exc, ValueError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
