"""`ich-ray` entry point: one subcommand per pipeline stage.

Each subcommand lives in `ich_ray/cli/<name>.py` with `HELP`, `add_arguments(parser)` and `run(args) -> int`.
Those modules import only argparse-level things at import time, so `ich-ray --help` stays fast; the heavy
libraries (Ray, torch, MLflow) are imported inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from ich_ray import __version__

SUBCOMMANDS = (
    "synth",
    "metadata",
    "clean",
    "explore",
    "reprocess",
    "train",
    "train-study",
    "lr-find",
    "baseline",
    "compare",
    "predict",
)

log = logging.getLogger("ich_ray")

# What the library raises on purpose for bad input or a bad config (DicomReadError is a ValueError).
EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def _module(name: str):
    return importlib.import_module(f"ich_ray.cli.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ich-ray",
        description="Head-CT DICOM -> trained intracranial-hemorrhage detectors, on Ray and MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"ich-ray {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = _module(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except EXPECTED_ERRORS as exc:
        # Raised on purpose for bad input or a bad config: one clear line (the traceback with -v).
        log.debug("failure", exc_info=True)
        print(f"ich-ray {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception:
        # Anything else is a bug (ours or a library's): never hide where it happened.
        traceback.print_exc()
        print(f"ich-ray {args.command}: unexpected error; the traceback above says where", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
