"""Fuzz: seeded mutations of real GE slices and of synthetic files in every transfer syntax we write, through
metadata, clean and predict.

For every stage: no crash, no hang (a time budget per file and a peak-memory bound per file), files in =
ok + filtered + failed, and no `ok` row or image with a non-finite or implausible value. The 1,050 files go
through the stages' own per-file code in this process (metadata's `parse_batch`, clean's `clean_batch`,
predict's `header_rows` and `SlicePredictor`); a subset goes through the real Ray stages (`run_metadata`,
`run_clean`, `run_predict`). Counts by mutation kind and outcome go to test-artifacts/fuzz-counts.json and
the log.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import signal
import time
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pydicom
import pytest
import torch
from pydicom.dataelem import RawDataElement

from ich_ray.data.clean import CleanConfig, clean_batch, run_clean
from ich_ray.data.metadata import MetadataConfig, parse_batch, run_metadata
from ich_ray.dicom.checks import HU_RANGE, SLOPE_RANGE
from ich_ray.dicom.read import read_hu
from ich_ray.imaging.recipe import CleanRecipe
from ich_ray.labels import LABEL_COLUMNS, LABELS
from ich_ray.models.checkpoint import CHECKPOINT_FILE
from ich_ray.models.loading import ModelSpec, model_metadata
from ich_ray.models.registry import create_model, get_spec
from ich_ray.predict.inference import SlicePredictor
from ich_ray.predict.run import PredictConfig, run_predict
from ich_ray.predict.slices import header_rows
from ich_ray.synthetic.phantom import render_study
from ich_ray.synthetic.plan import plan_dataset
from ich_ray.synthetic.writer import PIXEL_FORMATS, TRANSFER_SYNTAXES, SeriesWriter

log = logging.getLogger(__name__)
# pydicom warns (UserWarning) about every invalid value these files hold, which is the point of them
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEED = 15
N_FILES = int(os.environ.get("ICH_RAY_FUZZ_FILES", 1050))  # 150 per mutation kind; more with the variable
N_RAY_FILES = 70  # the subset that also goes through the Ray stages
KINDS = ("byte_flip", "truncate", "insert", "delete", "length_field", "pixel_module", "rescale")
SECONDS_PER_FILE = 5.0  # per stage; a 512 x 512 slice takes ~2-20 ms, so only a hang comes near it
PEAK_BYTES_PER_FILE = 256 * 1024**2  # the matrix cap (4096^2) bounds a decode to ~100 MiB
RECIPE = CleanRecipe(windows=("brain", "subdural", "bone"), size=32, crop=True)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PIXEL_DATA = 0x7FE00010
_LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}

PIXEL_MODULE_VALUES = {
    "Rows": [0, 1, 63, 511, 1024, 65535],
    "Columns": [0, 1, 65, 513, 4097, 65535],
    "BitsAllocated": [0, 1, 8, 12, 32, 64],
    "BitsStored": [0, 1, 7, 8, 11, 13, 17, 32],
    "HighBit": [0, 7, 14, 40, 65535],
    "PixelRepresentation": [0, 1, 2],
    "SamplesPerPixel": [0, 2, 3],
    "PhotometricInterpretation": ["RGB", "MONOCHROME1", "YBR_FULL", "PALETTE COLOR", "XYZ"],
    "NumberOfFrames": [0, 2, 100],
}
RESCALE_VALUES = ["inf", "-inf", "nan", "-1", "0", "1e-20", "1e300", "-1e300", "1e6", "-30000", "0.5", "2", "n/a", ""]


class FileTimeout(BaseException):
    """Raised by the alarm: a BaseException, so the stages' `except Exception` cannot swallow it."""


# ----------------------------------------------------------------------------------------------- sources


def _synthetic_sources() -> list[tuple[str, bytes]]:
    """One 64 px slice per pixel format and transfer syntax the generator writes."""
    out = []
    for syntax in TRANSFER_SYNTAXES:
        plan = plan_dataset(1, 64, 8, seed=SEED, compression=syntax)[0]
        hu, _ = render_study(np.random.default_rng(SEED), plan.header.rows, 8, subtypes=())
        for fmt in PIXEL_FORMATS:
            header = plan.header.__class__(**{**plan.header.__dict__, "pixel_format": fmt})
            out.append((f"synthetic-{syntax}-{fmt}", SeriesWriter(header).slice_bytes(hu[4], 4, f"1.2.826.0.1.3680043.15.{len(out)}")))
    return out


class Source:
    """A file to mutate: its bytes, where its header ends and where its length fields are."""

    def __init__(self, name: str, data: bytes):
        self.name, self.data = name, data
        ds = pydicom.dcmread(io.BytesIO(data), defer_size=None)
        pixel = ds.get_item(PIXEL_DATA)
        self.header_end = pixel.value_tell - 12 if isinstance(pixel, RawDataElement) else len(data) // 2
        self.lengths = []  # (offset, width) of each dataset element's length field (explicit VR little endian)
        for tag in ds.keys():
            elem = ds.get_item(tag)
            if isinstance(elem, RawDataElement) and elem.value_tell:
                width = 4 if elem.VR in _LONG_LENGTH_VRS else 2
                self.lengths.append((elem.value_tell - width, width))


# --------------------------------------------------------------------------------------------- mutations


def _position(rng: random.Random, src: Source) -> int:
    """Weighted to the header: 80% of positions fall before the pixel data."""
    return rng.randrange(0, src.header_end) if rng.random() < 0.8 else rng.randrange(0, len(src.data))


def _byte_flip(rng, src):
    data = bytearray(src.data)
    for _ in range(rng.randint(1, 16)):
        data[_position(rng, src)] ^= rng.randint(1, 255)
    return bytes(data), "bytes"


def _truncate(rng, src):
    cut = rng.randrange(0, len(src.data))
    return src.data[:cut], f"at {cut}"


def _insert(rng, src):
    at, n = _position(rng, src), rng.randint(1, 64)
    return src.data[:at] + rng.randbytes(n) + src.data[at:], f"{n} at {at}"


def _delete(rng, src):
    at, n = _position(rng, src), rng.randint(1, 64)
    return src.data[:at] + src.data[at + n:], f"{n} at {at}"


def _length_field(rng, src):
    offset, width = rng.choice(src.lengths)
    top = 0xFFFF if width == 2 else 0xFFFFFFFF
    old = int.from_bytes(src.data[offset:offset + width], "little")
    new = rng.choice([0, 1, top, top - 1, max(0, old - rng.randint(1, 8)), min(top, old + rng.randint(1, 8)),
                      rng.randint(0, top)])
    return src.data[:offset] + new.to_bytes(width, "little") + src.data[offset + width:], f"{old}->{new}"


def _rewritten(src: Source, keyword: str, value) -> bytes:
    """The source with one element set through pydicom, then written (invalid values included)."""
    ds = pydicom.dcmread(io.BytesIO(src.data))
    if value == "n/a":  # text where a number belongs: pydicom refuses it as a DS, so it goes in as LO
        del ds[keyword]
        ds.add_new(pydicom.datadict.tag_for_keyword(keyword), "LO", value)
    else:
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values written on purpose
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _pixel_module(rng, src):
    keyword = rng.choice(sorted(PIXEL_MODULE_VALUES))
    value = rng.choice(PIXEL_MODULE_VALUES[keyword])
    return _rewritten(src, keyword, value), f"{keyword}={value!r}"


def _rescale(rng, src):
    keyword = rng.choice(["RescaleSlope", "RescaleIntercept"])
    value = rng.choice(RESCALE_VALUES)
    return _rewritten(src, keyword, value), f"{keyword}={value!r}"


MUTATORS = {"byte_flip": _byte_flip, "truncate": _truncate, "insert": _insert, "delete": _delete,
            "length_field": _length_field, "pixel_module": _pixel_module, "rescale": _rescale}


def mutated_files(sources: list[Source], n: int, seed: int):
    """(index, kind, source name, detail, bytes) for n seeded mutations, kinds in turn."""
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        kind, src = KINDS[i % len(KINDS)], rng.choice(sources)
        data, detail = MUTATORS[kind](rng, src)
        yield i, kind, src.name, detail, data


# ------------------------------------------------------------------------------------------ stage calls


class Budget:
    """Each call runs under an alarm and tracemalloc: its seconds and peak bytes are kept, a hang raises."""

    def __init__(self):
        self.worst_seconds, self.worst_bytes = 0.0, 0
        self.worst_call = ""  # what used worst_bytes, for the assertion message

    def __call__(self, fn, *args):
        def alarm(signum, frame):
            raise FileTimeout(f"{fn} ran past {SECONDS_PER_FILE} s on {args[0]}")

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_FILE)
        tracemalloc.reset_peak()
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            self.worst_seconds = max(self.worst_seconds, time.perf_counter() - start)
            peak = tracemalloc.get_traced_memory()[1]
            if peak > self.worst_bytes:
                self.worst_bytes, self.worst_call = peak, f"{fn.__name__ if hasattr(fn, '__name__') else fn} {args[0]}"


def _tiny_model(tmp_path: Path) -> tuple[ModelSpec, dict, Path]:
    """A random-init ResNet18 for the 3-window recipe at 32 px, saved as a training checkpoint."""
    torch.manual_seed(SEED)
    mean, std = get_spec("resnet18").normalization(RECIPE.channels)
    metadata = model_metadata("resnet18", "multilabel", list(LABELS), RECIPE.to_json(), RECIPE.channels, 32, mean, std)
    state = create_model("resnet18", len(LABELS), RECIPE.channels).state_dict()
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    torch.save({"metadata": metadata, "model": state}, ckpt / CHECKPOINT_FILE)
    return ModelSpec.from_metadata(metadata, str(ckpt)), state, ckpt


def check_ok_row(row: dict) -> None:
    """An ok metadata row: every number finite, the rescale and the HU range plausible."""
    for name, value in row.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{row['path']}: ok row with {name}={value}"
    assert SLOPE_RANGE[0] <= (row["rescale_slope"] or 1.0) <= SLOPE_RANGE[1], row
    assert HU_RANGE[0] <= row["img_min"] <= row["img_max"] <= HU_RANGE[1], row


def check_ok_image(path: str) -> None:
    hu = read_hu(path)
    assert np.isfinite(hu).all() and HU_RANGE[0] <= hu.min() <= hu.max() <= HU_RANGE[1], path


def _clean_input(row: dict) -> pa.Table:
    ids = {c: [row[c]] for c in ("sop_instance_uid", "study_instance_uid", "series_instance_uid", "patient_id")}
    return pa.table({"path": [row["path"]], **ids, "slice_index": pa.array([0], pa.int32()),
                     **{c: pa.array([None], pa.int8()) for c in LABEL_COLUMNS},
                     "path_prev": pa.array([None], pa.string()), "path_next": pa.array([None], pa.string())})


class Stages:
    """One file through metadata, clean and predict, with each stage's own per-file code."""

    def __init__(self, work: Path, spec: ModelSpec, state: dict):
        self.work, self.budget = work, Budget()
        self.predictor = SlicePredictor(spec, state)
        self.failures = work / "clean-failures"
        self.failures.mkdir()

    def run(self, path: str) -> dict[str, str]:
        outcome = {}
        row = self.budget(parse_batch, pa.table({"path": [path]})).to_pylist()[0]
        outcome["metadata"] = f"{row['status']}:{row['error_type']}" if row["status"] == "failed" else "ok"
        if row["status"] == "ok":
            check_ok_row(row)
            if row["img_pct_window"] < CleanConfig.min_brain_fraction:
                outcome["clean"] = "filtered"
            else:
                outcome["clean"] = self._clean(row)
        else:
            outcome["clean"] = "failed:metadata"
        outcome["predict"] = self._predict(path)
        return outcome

    def _clean(self, row: dict) -> str:
        before = set(self.failures.iterdir())
        images = self.budget(clean_batch, _clean_input(row), RECIPE.to_json(), "fuzz", str(self.failures), None)
        written = set(self.failures.iterdir()) - before
        if images.num_rows == 1 and not written:
            check_ok_image(row["path"])
            return "ok"
        assert images.num_rows == 0 and len(written) == 1, (row["path"], images.num_rows, written)
        failure = pl.read_parquet(written.pop())
        assert failure.columns == ["path", "stage", "error_type", "error", "run_id"]
        return f"failed:{failure['error_type'][0]}"

    def _predict(self, path: str) -> str:
        header = self.budget(header_rows, [path]).row(0, named=True)
        if header["status"] == "failed":
            return f"failed:{header['error_type']}"
        batch = {"path": np.array([path]), "prev_path": np.array([""]), "next_path": np.array([""])}
        result = self.budget(self.predictor, batch).to_pylist()[0]
        if result["error_type"] is not None:
            return f"failed:{result['error_type']}"
        probs = [result[f"prob_{name}"] for name in LABELS]
        assert all(p is not None and 0.0 <= p <= 1.0 for p in probs), (path, probs)
        check_ok_image(path)
        return "ok"


def _outcome_class(outcome: str) -> str:
    return outcome.split(":")[0]


@pytest.fixture(scope="module")
def sources(real_ct_dir) -> list[Source]:
    real = [(f"real-ge-{p.stem}", p.read_bytes()) for p in sorted(real_ct_dir.glob("*.dcm"))]
    return [Source(name, data) for name, data in [*real, *_synthetic_sources()]]


def _write_counts(name: str, counts: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(counts, indent=1, sort_keys=True))
    log.info("fuzz counts (%s): %s", name, json.dumps(counts, sort_keys=True))


@pytest.mark.ray  # parse_batch names the Ray node that parsed each file
@pytest.mark.slow
def test_fuzz_every_stage_accounts_for_every_file(ray_session, sources, tmp_path):
    spec, state, _ = _tiny_model(tmp_path)
    stages = Stages(tmp_path, spec, state)
    by_kind: dict[str, dict[str, Counter]] = {}
    per_stage = {stage: Counter() for stage in ("metadata", "clean", "predict")}
    tracemalloc.start()
    try:
        for i, kind, source, _detail, data in mutated_files(sources, N_FILES, SEED):
            path = tmp_path / f"{i:04d}.dcm"
            path.write_bytes(data)
            outcome = stages.run(str(path))
            path.unlink()
            for stage, result in outcome.items():
                by_kind.setdefault(stage, {}).setdefault(kind, Counter())[result] += 1
                per_stage[stage][_outcome_class(result)] += 1
            by_kind.setdefault("source", {}).setdefault(kind, Counter())[source.split("-")[0]] += 1
    finally:
        tracemalloc.stop()
    for stage, counts in per_stage.items():
        assert sum(counts.values()) == N_FILES, (stage, counts)  # files in = ok + filtered + failed
        assert set(counts) <= {"ok", "filtered", "failed"}, (stage, counts)
    assert stages.budget.worst_seconds < SECONDS_PER_FILE
    assert stages.budget.worst_bytes < PEAK_BYTES_PER_FILE, stages.budget.worst_call
    assert per_stage["metadata"]["ok"] > 0 and per_stage["metadata"]["failed"] > 0
    _write_counts("fuzz-counts.json", {
        "files": N_FILES, "seed": SEED, "worst_seconds_per_call": round(stages.budget.worst_seconds, 3),
        "worst_peak_mib_per_call": round(stages.budget.worst_bytes / 1024**2, 1),
        "by_stage": {s: dict(c) for s, c in per_stage.items()},
        "by_kind": {s: {k: dict(c) for k, c in kinds.items()} for s, kinds in by_kind.items()},
    })


@pytest.mark.ray
@pytest.mark.slow
def test_fuzz_subset_through_the_ray_stages(ray_session, sources, tmp_path):
    """The real stages on a subset (every kind): the same accounting, and no ok row or image out of range."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, _kind, _source, _detail, data in mutated_files(sources, N_RAY_FILES, SEED + 1):
        (inputs / f"{i:04d}.dcm").write_bytes(data)
    root = tmp_path / "root"
    meta = run_metadata(MetadataConfig(input=str(inputs), out=str(root)))
    assert meta.files_in == N_RAY_FILES == meta.ok + meta.filtered + meta.failed
    rows = pl.read_parquet(root / "metadata")
    for row in rows.filter(pl.col("status") == "ok").to_dicts():
        check_ok_row(row)
    quarantine = pl.read_parquet(root / "quarantine")
    assert quarantine.columns == ["path", "stage", "error_type", "error", "run_id"]
    clean = run_clean(CleanConfig(data=str(root), size=32))
    assert clean.files_in == N_RAY_FILES == clean.ok + clean.filtered + clean.failed
    images = pl.read_parquet(root / "images")
    kept = rows.join(images.select("sop_instance_uid"), on="sop_instance_uid", how="semi")
    for path in kept["path"].to_list():
        check_ok_image(path)
    _, _, ckpt = _tiny_model(tmp_path)
    out = tmp_path / "predict"
    summary = run_predict(PredictConfig(model=str(ckpt), input=str(inputs), out=str(out), actors=1, batch_size=16))
    failures = pl.read_csv(out / "failures.csv")
    assert failures.columns[:4] == ["path", "stage", "error_type", "error"]
    assert summary.files_in == N_RAY_FILES == summary.slices + summary.failed
    preds = pl.read_parquet(out / "predictions.parquet")
    assert preds.select(pl.col("^prob_.*$").is_between(0, 1).all()).row(0) == (True,) * len(LABELS)
    _write_counts("fuzz-ray-counts.json", {
        "files": N_RAY_FILES,
        "metadata": {"ok": meta.ok, "filtered": meta.filtered, "failed": meta.failed},
        "clean": {"ok": clean.ok, "filtered": clean.filtered, "failed": clean.failed},
        "predict": {"ok": summary.slices, "failed": summary.failed},
        "error_types": dict(Counter(quarantine["error_type"].to_list()) + Counter(
            f"predict:{t}" for t in failures["error_type"].to_list())),
    })
