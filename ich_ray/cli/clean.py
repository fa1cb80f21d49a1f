"""`ich-ray clean` (and the clean options `ich-ray reprocess` shares)."""

from __future__ import annotations

from ich_ray.cli.common import add_address_argument, add_config_arguments

HELP = "Window, filter, crop and resize ok slices into ROOT/images/ Parquet shards."


def add_clean_options(parser) -> None:
    """Options that define the image recipe and filter (None = not given: config/recipe default applies)."""
    parser.add_argument("--size", type=int, default=None, help="output side in pixels (default 256)")
    parser.add_argument(
        "--min-brain-fraction", type=float, default=None,
        help="drop slices with a smaller fraction of 0-80 HU pixels (default 0.02)",
    )
    parser.add_argument(
        "--windows", default=None,
        help="comma-separated windows, names or name:center:width (default brain,subdural,bone)",
    )
    parser.add_argument(
        "--context", action="store_const", const=True, default=None,
        help="2.5D: previous/this/next slice per window",
    )
    parser.add_argument(
        "--format", choices=("png", "jpeg", "raw"), default=None,  # imaging.encode.FORMATS, not imported here
        help="image encoding (default raw: the uint8 values, the cheapest to decode in training; png, jpeg)",
    )
    parser.add_argument("--export-jpg", default=None, metavar="DIR", help="also write DIR/<sop uid>.jpg (3 channels)")


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--data", help="data root holding metadata/ (from `ich-ray metadata`)")
    add_clean_options(parser)
    add_address_argument(parser)


def clean_flags(args) -> dict:
    return {
        "size": args.size, "min_brain_fraction": args.min_brain_fraction, "windows": args.windows,
        "context": args.context, "format": args.format, "export_jpg": args.export_jpg, "address": args.address,
    }


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.data.clean import CleanConfig, run_clean

    run_clean(load_config(CleanConfig, args.config, args.overrides, data=args.data, **clean_flags(args)))
    return 0
