"""`ich-ray metadata`."""

from __future__ import annotations

from ich_ray.cli.common import add_address_argument, add_config_arguments

HELP = "Read a DICOM tree in parallel (Ray Data) into ROOT/metadata/ Parquet, one row per file."


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--input", help="folder of DICOM files (searched recursively)")
    parser.add_argument("--out", help="data root: writes ROOT/metadata/ and ROOT/quarantine/")
    parser.add_argument("--labels", default=None, help="RSNA-style label CSV (ID,Label) to join")
    add_address_argument(parser)


def run(args) -> int:
    from ich_ray.config import load_config
    from ich_ray.data.metadata import MetadataConfig, run_metadata

    cfg = load_config(
        MetadataConfig, args.config, args.overrides,
        input=args.input, out=args.out, labels=args.labels, address=args.address,
    )
    run_metadata(cfg)
    return 0
