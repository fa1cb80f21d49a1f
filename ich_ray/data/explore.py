"""Stage 3: a look at the data before training: polars tables and matplotlib plots of ROOT/metadata/.

`write_report` writes ROOT/reports/: one PNG per plot and `index.html` (tables, a short summary, the PNGs).
Every count is over the metadata table, one row per input file; label and pixel-format figures count the
readable slices (`status == "ok"`), failures count the rest. The example slices are read again from the
DICOM files, shown in the brain, subdural and bone windows (the seed paper's figures).

The figures and the page's HTML live in `ich_ray.data.report`; this module computes what they show.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ich_ray.data import report
from ich_ray.data.io import scan_table
from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.labels import LABEL_COLUMNS, LABELS, SUBTYPES

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = (
    "path", "status", "error_type", "bits_stored", "pixel_representation", "rescale_intercept",
    "img_pct_window", "pxrepr_fixed",
)
OK = pl.col("status") == "ok"
DEFAULT_MIN_BRAIN_FRACTION = CleanRecipe().min_brain_fraction


@dataclass
class ExploreConfig:
    data: str
    out_dir: str | None = None  # default ROOT/reports
    examples: int = 2  # example slices per subtype
    min_brain_fraction: float = DEFAULT_MIN_BRAIN_FRACTION  # the blank-slice threshold of the clean recipe
    tracking_uri: str | None = None
    track: bool = False  # log the report to MLflow at the resolved URI even without --tracking-uri


def read_metadata(data_root: str | Path) -> pl.DataFrame:
    """The columns of ROOT/metadata/ the report needs; label columns absent from the table come back null."""
    folder = Path(data_root) / "metadata"
    scan = scan_table(folder)
    if scan is None:
        raise FileNotFoundError(f"no metadata table in {folder}: run `ich-ray metadata` first")
    names = scan.collect_schema().names()
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{folder}: metadata table lacks columns {missing}")
    labels = [pl.col(c).cast(pl.Int8) if c in names else pl.lit(None, pl.Int8).alias(c) for c in LABEL_COLUMNS]
    return scan.select(*REQUIRED_COLUMNS, *labels).collect()


def has_labels(meta: pl.DataFrame) -> bool:
    return meta.select(pl.any_horizontal(pl.col(LABEL_COLUMNS).is_not_null()).any()).item()


# ---------------------------------------------------------------- tables (polars)


OVERVIEW_ROWS = {
    "files": "files",
    "ok": "readable slices (ok)",
    "failed": "failed files",
    "labelled": "labelled slices",
    "bleed": "slices with bleed (any = 1)",
    "pxrepr_fixed": "pixel-representation fix applied",
    "blank": "blank slices (brain fraction < {threshold:g})",
    "blank_bleed": "blank slices with bleed",
}


def overview(meta: pl.DataFrame, min_brain_fraction: float) -> dict[str, int]:
    """The headline counts, keyed like `OVERVIEW_ROWS`."""
    ok = meta.filter(OK)
    return {
        "files": meta.height,
        "ok": ok.height,
        "failed": meta.height - ok.height,
        "labelled": int(ok["label_any"].is_not_null().sum()),
        "bleed": int(ok["label_any"].eq(1).sum()),
        "pxrepr_fixed": int(ok["pxrepr_fixed"].fill_null(False).sum()),
        "blank": int(ok["img_pct_window"].lt(min_brain_fraction).sum()),
        "blank_bleed": int((ok["img_pct_window"].lt(min_brain_fraction) & ok["label_any"].eq(1)).sum()),
    }


def overview_table(counts: dict[str, int], min_brain_fraction: float) -> pl.DataFrame:
    return pl.DataFrame({
        "what": [OVERVIEW_ROWS[k].format(threshold=min_brain_fraction) for k in counts],
        "count": list(counts.values()),
    })


def summary_lines(counts: dict[str, int], min_brain_fraction: float) -> list[str]:
    """The page's few sentences of text (the numbers are in the overview table too)."""
    def share(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f} %" if whole else "n/a"

    c = counts
    lines = [f"{c['files']:,} files: {c['ok']:,} readable, {c['failed']:,} failed ({share(c['failed'], c['files'])})."]
    if c["labelled"]:
        lines.append(f"{c['labelled']:,} of {c['ok']:,} readable slices are labelled; {c['bleed']:,} show a bleed "
                     f"({share(c['bleed'], c['labelled'])} of the labelled).")
    else:
        lines.append("No labels: the label plots are empty (`ich-ray metadata --labels CSV` adds them).")
    lines.append(f"The pixel-representation fix was applied to {c['pxrepr_fixed']:,} slices.")
    blank = f"{c['blank']:,} slices fall below the brain fraction {min_brain_fraction:g}: `ich-ray clean` drops them"
    lines.append(blank + (f"; {c['blank_bleed']:,} of them show a bleed." if c["labelled"] else "."))
    return lines


def class_balance(meta: pl.DataFrame) -> pl.DataFrame:
    name = pl.col("label_any").replace_strict({0: "no bleed", 1: "bleed"}, default="unlabelled", return_dtype=pl.String)
    return (
        meta.filter(OK)
        .group_by(name.alias("class"))
        .agg(pl.len().alias("slices"))
        .with_columns((100 * pl.col("slices") / pl.col("slices").sum()).round(1).alias("percent"))
        .sort(pl.col("class").replace_strict({"no bleed": 0, "bleed": 1, "unlabelled": 2}, return_dtype=pl.Int8))
    )


def subtype_counts(meta: pl.DataFrame) -> pl.DataFrame:
    ok = meta.filter(OK)
    positives = ok.select(pl.col(LABEL_COLUMNS).eq(1).sum()).row(0)
    labelled = ok.select(pl.col(LABEL_COLUMNS).is_not_null().sum()).row(0)
    return pl.DataFrame({"label": list(LABELS), "positive": positives, "labelled": labelled}).with_columns(
        (100 * pl.col("positive") / pl.col("labelled")).round(2).fill_nan(None).alias("percent")
    )


def pixel_formats(meta: pl.DataFrame) -> pl.DataFrame:
    """Readable slices per (BitsStored, PixelRepresentation): bleed rate, pxrepr fixes, intercept range."""
    return (
        meta.filter(OK)
        .group_by("bits_stored", "pixel_representation")
        .agg(
            pl.len().alias("slices"),
            pl.col("label_any").eq(1).sum().alias("bleed"),
            (100 * pl.col("label_any").mean()).round(1).alias("bleed_percent"),
            pl.col("pxrepr_fixed").fill_null(False).sum().alias("pxrepr_fixed"),
            pl.col("rescale_intercept").min().alias("intercept_min"),
            pl.col("rescale_intercept").max().alias("intercept_max"),
        )
        .sort("bits_stored", "pixel_representation", nulls_last=True)
    )


def failures(meta: pl.DataFrame) -> pl.DataFrame:
    return (
        meta.filter(~OK)
        .group_by(pl.col("error_type").fill_null("unknown"))
        .agg(pl.len().alias("files"), pl.col("path").sort().first().alias("example"))
        .sort("files", "error_type", descending=[True, False])
    )


def pick_examples(meta: pl.DataFrame, subtype: str, n: int) -> pl.DataFrame:
    """Up to `n` positive slices of `subtype`: those with the fewest other subtypes first (clearest
    pictures), then the most brain in view; ties by path, so the choice is the same every run."""
    column = f"label_{subtype}"
    n_positive = pl.sum_horizontal(pl.col(f"label_{s}").fill_null(0) for s in SUBTYPES)
    return (
        meta.filter(OK & pl.col(column).eq(1))
        .sort(n_positive, pl.col("img_pct_window"), pl.col("path"), descending=[False, True, False])
        .head(n)
        .select("path", *LABEL_COLUMNS)
    )


def read_examples(meta: pl.DataFrame, subtype: str, n: int) -> list[tuple[str, np.ndarray | None]]:
    """(caption, HU image) of the chosen examples; None for a file that can no longer be read.
    The caption is the file name and, on a second line, every label the slice carries."""
    from ich_ray.dicom import DicomReadError, read_slice

    out = []
    for row in pick_examples(meta, subtype, n).iter_rows(named=True):
        path = row["path"]
        caption = Path(path).name + "\n" + ", ".join(s for s in SUBTYPES if row[f"label_{s}"] == 1)
        try:
            out.append((caption, read_slice(path, path)[1]))
        except (DicomReadError, OSError) as exc:
            log.warning("example slice for %s cannot be read: %s", subtype, exc)
            out.append((caption, None))
    return out


def _save(fig, out_dir: Path, name: str) -> str:
    fig.savefig(out_dir / name, dpi=100)
    return name


def _sections(meta: pl.DataFrame, out_dir: Path, examples: int, min_brain_fraction: float) -> list[report.Section]:
    labelled = has_labels(meta)
    no_labels = "" if labelled else "The metadata table has no labels. "
    balance, subtypes, formats, failed = class_balance(meta), subtype_counts(meta), pixel_formats(meta), failures(meta)
    S = report.Section
    sections = [
        S("Slices with and without bleed", no_labels + "Readable slices by label_any.",
          _save(report.plot_class_balance(balance, labelled), out_dir, "class_balance.png"), balance, "class-balance"),
        S("Positive slices per label", no_labels + "A slice can carry several subtypes; any = at least one.",
          _save(report.plot_subtypes(subtypes, labelled), out_dir, "subtypes.png"), subtypes, "subtypes"),
        S("Pixel formats", "Readable slices per BitsStored / PixelRepresentation, with their bleed rate and how "
          "many needed the pixel-representation fix (12-bit unsigned with intercept > -100).",
          _save(report.plot_pixel_formats(formats), out_dir, "pixel_formats.png"), formats, "pixel-formats"),
        S("Brain fraction", f"Slices below {min_brain_fraction:g} are treated as blank by `ich-ray clean`.",
          _save(report.plot_brain_fraction(meta.filter(OK), min_brain_fraction, labelled), out_dir,
                "brain_fraction.png")),
        S("Failures", "Files that could not be read, by reason; `example` is one such file.",
          _save(report.plot_failures(failed), out_dir, "failures.png"), failed, "failures"),
    ]
    for subtype in SUBTYPES:
        chosen = read_examples(meta, subtype, examples) if labelled else []
        image = _save(report.plot_examples(subtype, chosen), out_dir, f"examples_{subtype}.png")
        sections.append(S(f"Examples: {subtype}", "Brain (40/80), subdural (80/200) and bone (600/2800) windows.",
                          image))
    return sections


def write_report(data_root: str | Path, out_dir: str | Path | None = None, examples_per_subtype: int = 2,
                 min_brain_fraction: float = DEFAULT_MIN_BRAIN_FRACTION) -> Path:
    """Plots and `index.html` for ROOT/metadata/ in `out_dir` (default ROOT/reports/); returns the page's path."""
    if examples_per_subtype < 0:
        raise ValueError(f"examples_per_subtype must be >= 0, got {examples_per_subtype}")
    start = time.perf_counter()
    meta = read_metadata(data_root)
    out_dir = Path(out_dir) if out_dir is not None else Path(data_root) / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = overview(meta, min_brain_fraction)
    table = overview_table(counts, min_brain_fraction)
    sections = [report.Section("Overview", table=table, table_id="overview"),
                *_sections(meta, out_dir, examples_per_subtype, min_brain_fraction)]
    summary = summary_lines(counts, min_brain_fraction)
    page = report.write_html(out_dir / "index.html", "ich-ray data report", summary, sections)
    log.info(
        "explore: %d files (%d ok, %d failed), %d labelled, %d with bleed, %d blank -> %s in %.1f s",
        counts["files"], counts["ok"], counts["failed"], counts["labelled"], counts["bleed"], counts["blank"],
        page, time.perf_counter() - start,
    )
    return page


def explore(cfg: ExploreConfig) -> Path:
    """`ich-ray explore`: write the report; log it to MLflow when a tracking URI is given or `track` is set."""
    page = write_report(cfg.data, cfg.out_dir, cfg.examples, cfg.min_brain_fraction)
    if cfg.tracking_uri or cfg.track:
        from ich_ray.tracking.tracker import log_report

        log_report(cfg.tracking_uri, cfg.data, page.parent)
    return page
