"""edgedet command line: one module per command, in the explicit COMMANDS list.

`edgedet`, `python -m edgedet` and `python -m edgedet.cli` all run `main()`. User errors print one line
and exit 2; Ctrl-C (or SIGTERM) exits 130 after saying what was kept.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgedet.errors import EdgeDetError

# command name -> module in this package (each has HELP, add_arguments(parser) and run(args) -> int)
COMMANDS = {
    "info": "info",
    "export": "export",
    "build": "build",
    "check": "check",
    "calibrate": "calibrate",
    "detect": "detect",
    "eval": "evaluate",
    "train": "train",
    "bench": "bench",
    "compare": "compare",
    "tune": "tune",
    "batch": "batch",
    "serve": "serve",
}


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line, like every other error (argparse would print the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from edgedet import __version__

    parser = _Parser(prog="edgedet", description="EfficientDet from PyTorch to the edge.")
    parser.add_argument("--version", action="version", version=f"edgedet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    _sigterm_as_interrupt()
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgeDetError as e:
        print(f"edgedet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional dependency of this command (torch on a runtime-only install)
        from edgedet.extras import missing_module_message

        print(f"edgedet {args.command}: error: {missing_module_message(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only folder, permissions: one line, not a traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"edgedet {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgedet {args.command}: interrupted", file=sys.stderr)
        return 130


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, docker stop, kill) takes the same clean path as Ctrl-C: checkpoints and partial
    results are written before exit."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass
