"""Arguments several subcommands share."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="recipe file (pipelines/*.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key (repeatable); values are YAML, e.g. --set epochs=3",
    )


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", default=None,
        help="Ray cluster address (e.g. ray://127.0.0.1:10001 or auto); default: start Ray locally",
    )


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri", default=None,
        help="MLflow tracking URI (default: sqlite:///<data root>/mlflow.db)",
    )
    parser.add_argument("--experiment", default=None, help="MLflow experiment name")
