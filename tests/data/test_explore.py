from __future__ import annotations

import logging
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from ich_ray.cli.main import main
from ich_ray.data.explore import ExploreConfig, explore, pick_examples, write_report
from ich_ray.labels import LABEL_COLUMNS, LABELS, SUBTYPES

PLOTS = ("class_balance.png", "subtypes.png", "pixel_formats.png", "brain_fraction.png", "failures.png")
EXAMPLE_PLOTS = tuple(f"examples_{s}.png" for s in SUBTYPES)
THRESHOLD = 0.02


def fake_metadata(real_ct_dir: Path, n_ok: int = 30, labelled: bool = True) -> pl.DataFrame:
    """Ok rows in three pixel formats pointing at real GE slices (stand-ins for labelled images), plus failures."""
    rng = np.random.default_rng(7)
    files = sorted(str(p) for p in real_ct_dir.glob("*.dcm"))
    # 16-bit signed, 12-bit unsigned, and the 12-bit group with intercept 0 that needs the px-repr fix
    formats = [(16, 1, -1024.0, False), (12, 0, -1024.0, False), (12, 0, 0.0, True)]
    fmt = [formats[i % 3] for i in range(n_ok)]
    ok = pl.DataFrame({
        "path": [files[i % len(files)] for i in range(n_ok)],
        "status": ["ok"] * n_ok,
        "error_type": pl.Series([None] * n_ok, dtype=pl.String),
        "error": pl.Series([None] * n_ok, dtype=pl.String),
        "sop_instance_uid": [f"1.2.3.{i}" for i in range(n_ok)],
        "bits_stored": [f[0] for f in fmt],
        "pixel_representation": [f[1] for f in fmt],
        "rescale_intercept": [f[2] for f in fmt],
        "pxrepr_fixed": [f[3] for f in fmt],
        "img_pct_window": np.where(np.arange(n_ok) % 5 == 0, 0.0, rng.uniform(0.005, 0.4, n_ok)),
    })
    if labelled:
        subtypes = rng.random((n_ok, len(SUBTYPES))) < 0.25
        subtypes[:5] = np.eye(5, dtype=bool)  # at least one positive of each subtype
        values = np.column_stack([subtypes, subtypes.any(axis=1)]).astype(np.int8)
        labels = {c: pl.Series(values[:, i], dtype=pl.Int8) for i, c in enumerate(LABEL_COLUMNS)}
        labels = {c: s.scatter([n_ok - 1, n_ok - 2], None) for c, s in labels.items()}  # two unlabelled slices
        ok = ok.with_columns(**labels)
    errors = ["TruncatedFileError", "TruncatedFileError", "TruncatedFileError", "NotDicomError", "NotDicomError",
              "EmptyFileError"]
    failed = pl.DataFrame({
        "path": [f"/data/tree/pt{i}/broken{i}.dcm" for i in range(len(errors))],
        "status": ["failed"] * len(errors),
        "error_type": errors,
        "error": [f"/data/tree/pt{i}/broken{i}.dcm: {e}" for i, e in enumerate(errors)],
    })
    return pl.concat([ok, failed], how="diagonal_relaxed")


def make_root(tmp_path: Path, meta: pl.DataFrame) -> Path:
    (tmp_path / "metadata").mkdir(parents=True)
    meta.write_parquet(tmp_path / "metadata" / "part-0.parquet")
    return tmp_path


class Tables(HTMLParser):
    """{table id: [[cell text, ...], ...]} (header row first) of every table with an id."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._current = None
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "id" in attrs:
            self._current = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._current is not None:
            self._current.append([])
        elif tag in ("td", "th") and self._current is not None:
            self._current[-1].append("")
            self._in_cell = True
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._current = None
        elif tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell and self._current is not None:
            self._current[-1][-1] += data


def parse_page(page: Path) -> Tables:
    parser = Tables()
    parser.feed(page.read_text())
    return parser


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def labelled_report(tmp_path_factory, real_ct_dir):
    meta = fake_metadata(real_ct_dir)
    root = make_root(tmp_path_factory.mktemp("root"), meta)
    return meta, write_report(root, examples_per_subtype=2, min_brain_fraction=THRESHOLD)


def test_every_plot_is_a_valid_png_referenced_by_the_page(labelled_report):
    _, page = labelled_report
    assert page.name == "index.html" and page.parent.name == "reports"
    parsed = parse_page(page)
    for name in PLOTS + EXAMPLE_PLOTS:
        png = page.parent / name
        assert png.stat().st_size > 5_000, name
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) >= 200
            assert np.asarray(image.convert("L")).std() > 5, f"{name} is blank"
        assert name in parsed.images


def test_overview_table_matches_polars_counts(labelled_report):
    meta, page = labelled_report
    ok = meta.filter(pl.col("status") == "ok")
    expected = {
        "files": meta.height,
        "readable slices (ok)": ok.height,
        "failed files": meta.height - ok.height,
        "labelled slices": ok["label_any"].is_not_null().sum(),
        "slices with bleed (any = 1)": (ok["label_any"] == 1).sum(),
        "pixel-representation fix applied": ok["pxrepr_fixed"].sum(),
        f"blank slices (brain fraction < {THRESHOLD:g})": (ok["img_pct_window"] < THRESHOLD).sum(),
        "blank slices with bleed": ((ok["img_pct_window"] < THRESHOLD) & (ok["label_any"] == 1)).sum(),
    }
    got = {row["what"]: number(row["count"]) for row in as_dicts(parse_page(page).tables["overview"])}
    assert got == expected
    assert (expected["files"], expected["failed files"], expected["pixel-representation fix applied"]) == (36, 6, 10)


def test_label_tables_match_polars_counts(labelled_report):
    meta, page = labelled_report
    ok = meta.filter(pl.col("status") == "ok")
    tables = parse_page(page).tables

    balance = {row["class"]: number(row["slices"]) for row in as_dicts(tables["class-balance"])}
    assert balance == {
        "no bleed": (ok["label_any"] == 0).sum(),
        "bleed": (ok["label_any"] == 1).sum(),
        "unlabelled": 2,
    }
    subtypes = {row["label"]: number(row["positive"]) for row in as_dicts(tables["subtypes"])}
    assert subtypes == {name: (ok[f"label_{name}"] == 1).sum() for name in LABELS}


def test_pixel_format_and_failure_tables_match_polars_counts(labelled_report):
    meta, page = labelled_report
    tables = parse_page(page).tables
    expected = (
        meta.filter(pl.col("status") == "ok")
        .group_by("bits_stored", "pixel_representation")
        .agg(pl.len().alias("slices"), (pl.col("label_any") == 1).sum().alias("bleed"), pl.col("pxrepr_fixed").sum())
    )
    got = {
        (number(r["bits_stored"]), number(r["pixel_representation"])): (
            number(r["slices"]), number(r["bleed"]), number(r["pxrepr_fixed"]))
        for r in as_dicts(tables["pixel-formats"])
    }
    assert got == {(b, p): (n, k, f) for b, p, n, k, f in expected.iter_rows()}
    assert got[(12, 0)][0] == 20 and got[(16, 1)][2] == 0

    failures = {r["error_type"]: number(r["files"]) for r in as_dicts(tables["failures"])}
    assert failures == {"TruncatedFileError": 3, "NotDicomError": 2, "EmptyFileError": 1}
    assert list(failures) == ["TruncatedFileError", "NotDicomError", "EmptyFileError"]  # most common first


def test_pick_examples_prefers_single_subtype_then_most_brain():
    meta = pl.DataFrame({
        "path": ["mixed.dcm", "pure_small.dcm", "pure_big.dcm", "negative.dcm", "broken.dcm"],
        "status": ["ok", "ok", "ok", "ok", "failed"],
        "img_pct_window": [0.9, 0.1, 0.3, 0.5, None],
        **{c: pl.Series([0] * 5, dtype=pl.Int8) for c in LABEL_COLUMNS},
    }).with_columns(
        label_subdural=pl.Series([1, 1, 1, 0, 1], dtype=pl.Int8),
        label_epidural=pl.Series([1, 0, 0, 0, 0], dtype=pl.Int8),
    )
    assert pick_examples(meta, "subdural", 3)["path"].to_list() == ["pure_big.dcm", "pure_small.dcm", "mixed.dcm"]
    assert pick_examples(meta, "intraventricular", 2).is_empty()


def test_report_without_labels_says_so(tmp_path, real_ct_dir):
    root = make_root(tmp_path, fake_metadata(real_ct_dir, labelled=False))
    page = write_report(root, examples_per_subtype=1)
    text = page.read_text()
    assert "no labels" in text.lower()
    tables = parse_page(page).tables
    assert as_dicts(tables["class-balance"]) == [{"class": "unlabelled", "slices": "30", "percent": "100"}]
    assert {number(r["positive"]) for r in as_dicts(tables["subtypes"])} == {0}
    for name in PLOTS + EXAMPLE_PLOTS:
        assert (page.parent / name).stat().st_size > 1_000


def test_unreadable_example_is_shown_as_such(tmp_path, real_ct_dir, caplog):
    meta = fake_metadata(real_ct_dir).with_columns(
        path=pl.when(pl.col("status") == "ok").then(pl.lit(str(tmp_path / "gone.dcm"))).otherwise("path")
    )
    root = make_root(tmp_path / "root", meta)
    with caplog.at_level(logging.WARNING, logger="ich_ray.data.explore"):
        page = write_report(root, examples_per_subtype=1)
    assert "gone.dcm" in caplog.text
    assert (page.parent / "examples_epidural.png").is_file()


def test_missing_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `ich-ray metadata` first"):
        write_report(tmp_path)


def test_cli_writes_the_report(tmp_path, real_ct_dir, caplog):
    root = make_root(tmp_path, fake_metadata(real_ct_dir))
    out = tmp_path / "elsewhere"
    with caplog.at_level(logging.INFO, logger="ich_ray.data.explore"):
        assert main(["explore", "--data", str(root), "--out", str(out), "--examples", "1"]) == 0
    assert (out / "index.html").is_file() and (out / "failures.png").is_file()
    assert "explore: 36 files (30 ok, 6 failed)" in caplog.text


@pytest.mark.slow
def test_report_is_logged_to_mlflow(tmp_path, real_ct_dir):
    from mlflow import MlflowClient

    root = make_root(tmp_path, fake_metadata(real_ct_dir, n_ok=6))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    page = explore(ExploreConfig(data=str(root), examples=1, tracking_uri=uri))

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ich-ray/explore")
    (run,) = client.search_runs([experiment.experiment_id])
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {"index.html", *PLOTS, *EXAMPLE_PLOTS} <= logged
    assert page.is_file()
