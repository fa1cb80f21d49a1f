"""`ich-ray reprocess`."""

from __future__ import annotations

import logging

from ich_ray.cli.clean import add_clean_options, clean_flags
from ich_ray.cli.common import add_address_argument, add_config_arguments

HELP = "Incremental re-preprocessing: metadata + clean on new or changed files only."
EXIT_BUSY = 3  # another run holds ROOT/.reprocess.lock: nothing was done (a schedule may just skip)

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--input", help="folder of DICOM files (searched recursively)")
    parser.add_argument("--data", help="data root to bring up to date")
    parser.add_argument("--labels", default=None, help="RSNA-style label CSV (ID,Label) to join")
    add_clean_options(parser)
    add_address_argument(parser)


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.data.io import RootBusyError
    from ich_ray.data.reprocess import ReprocessConfig, run_reprocess

    cfg = load_config(
        ReprocessConfig, args.config, args.overrides,
        input=args.input, data=args.data, labels=args.labels, **clean_flags(args),
    )
    try:
        run_reprocess(cfg)
    except RootBusyError as exc:
        log.warning("reprocess skipped: %s (exit code %d)", exc, EXIT_BUSY)
        return EXIT_BUSY
    return 0
