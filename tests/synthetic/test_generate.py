import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ich_ray.cli.main import main
from ich_ray.labels import LABELS
from ich_ray.synthetic.generate import generate_dataset
from ich_ray.synthetic.plan import plan_dataset, uid


def _label_rows(path: Path) -> list[tuple[str, str]]:
    with path.open() as f:
        reader = csv.reader(f)
        assert next(reader) == ["ID", "Label"]
        return [tuple(row) for row in reader]


def _per_image(rows) -> dict[str, dict[str, int]]:
    images: dict[str, dict[str, int]] = {}
    for key, value in rows:
        image, _, subtype = key.rpartition("_")
        images.setdefault(image, {})[subtype] = int(value)
    return images


def _readable(summary) -> list[Path]:
    bad = {Path(p) for kind, p in summary.malformed_files.items()}
    return sorted(p for p in summary.dicom_dir.rglob("*.dcm") if p not in bad)


def test_counts_labels_and_duplicates(six_patients):
    s = six_patients
    rows = _label_rows(s.labels_csv)
    images = _per_image(rows)
    assert len(images) == s.n_slices == sum(n for k, n in s.variant_counts.items() if k.startswith("matrix_"))
    assert s.n_slices >= 120  # 6 patients x 20 slices, plus follow-up studies
    for image, labels in images.items():
        assert list(labels) == list(LABELS), image  # six rows per image, RSNA order
        assert labels["any"] == max(labels[k] for k in LABELS[:-1])
    duplicates = [row for row, n in Counter(rows).items() if n > 1]
    assert 3 <= len(duplicates) <= len(rows) // 50
    assert len(rows) == 6 * s.n_slices + sum(Counter(rows)[d] - 1 for d in duplicates)
    assert sum(v["any"] for v in images.values()) == s.n_positive == s.label_counts["any"]
    assert all(s.label_counts[k] > 0 for k in LABELS), s.label_counts


def test_uids_are_unique_across_series_and_slices():
    # (series 1, slice 11) and (series 11, slice 1) once shared a SOPInstanceUID: pydicom joins entropy
    # sources without a separator. The labels of such a pair collided ("conflicting labels, positive wins").
    uids = {uid(7, "sop", series, z) for series in range(40) for z in range(40)}
    assert len(uids) == 40 * 40


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_rate(tmp_path, seed):
    s = generate_dataset(tmp_path, patients=6, size=64, seed=seed, malformed=False)
    assert 0.15 <= s.n_positive / s.n_slices <= 0.40, (s.n_positive, s.n_slices)


def test_every_variant_present(six_patients):
    v = six_patients.variant_counts
    for key in ("signed16", "unsigned12", "bad_intercept", "window_single", "window_multi", "matrix_64x64", "matrix_80x80"):
        assert v.get(key, 0) > 0, (key, v)
    seen = Counter()
    for path in _readable(six_patients):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        fmt = (int(ds.BitsStored), int(ds.PixelRepresentation), float(ds.RescaleIntercept) > -100)
        seen[fmt] += 1
        seen["multi" if ds["WindowCenter"].VM > 1 else "single"] += 1
    assert seen[(16, 1, False)] and seen[(12, 0, False)] and seen[(12, 0, True)] and seen["multi"] and seen["single"]


def test_every_small_set_has_each_pixel_format():
    for seed in range(5):
        formats = {p.header.pixel_format for p in plan_dataset(3, 64, 20, seed, None)}
        assert formats == {"signed16", "unsigned12", "bad_intercept"}


def test_files_readable_and_ordered_by_z(six_patients):
    series = {}
    for path in _readable(six_patients):
        ds = pydicom.dcmread(path)
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        assert path.stem == ds.SOPInstanceUID and path.parent.name == ds.SeriesInstanceUID
        assert path.parent.parent.name == ds.StudyInstanceUID and path.parts[-4] == ds.PatientID
        assert ds.PatientID.startswith("ID_") and len(ds.PatientID) == 11
        series.setdefault(ds.SeriesInstanceUID, []).append((float(ds.ImagePositionPatient[2]), int(ds.InstanceNumber)))
    for positions in series.values():
        z = [p for p, _ in sorted(positions, key=lambda p: p[1])]
        assert z == sorted(z, reverse=True)  # instance 1 at the top (vertex), z falling


def test_malformed_files(six_patients):
    bad = six_patients.malformed_files
    assert set(bad) == {"truncated", "not_dicom", "empty"} and six_patients.n_malformed == 3
    assert Path(bad["empty"]).stat().st_size == 0
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(bad["not_dicom"])
    ds = pydicom.dcmread(bad["truncated"])  # the header parses...
    with pytest.raises(Exception):  # noqa: B017  ...the pixel data does not
        _ = ds.pixel_array
    images = _per_image(_label_rows(six_patients.labels_csv))
    assert f"ID_{Path(bad['truncated']).stem}" in images  # labelled, like the corrupt RSNA file
    assert not any(Path(bad[k]).stem in key for k in ("not_dicom", "empty") for key in images)
    assert six_patients.n_files == len(list(six_patients.dicom_dir.rglob("*.dcm")))


def test_phi_in_every_header(six_patients):
    phi = set(json.loads((six_patients.labels_csv.parent / "phi_values.json").read_text()))
    assert phi == set(six_patients.phi_values) and any(v.startswith("Testpatient^") for v in phi)
    for path in _readable(six_patients)[::7]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientBirthDate", "PatientAddress", "AccessionNumber", "InstitutionName",
                        "InstitutionAddress", "ReferringPhysicianName", "OperatorsName"):
            assert str(ds.data_element(keyword).value) in phi, keyword
    assert not any(v in six_patients.labels_csv.read_text() for v in phi)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix != ".png":
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_deterministic(tmp_path):
    a = generate_dataset(tmp_path / "a", patients=2, size=48, seed=5, slices_per_study=8, compression="mixed")
    b = generate_dataset(tmp_path / "b", patients=2, size=48, seed=5, slices_per_study=8, compression="mixed")
    generate_dataset(tmp_path / "c", patients=2, size=48, seed=6, slices_per_study=8, compression="mixed")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    assert a.n_slices == b.n_slices


def test_rle_decodes_to_same_hu_as_uncompressed(tmp_path):
    kw = dict(patients=2, size=48, seed=8, slices_per_study=8, malformed=False)
    plain = generate_dataset(tmp_path / "plain", **kw)
    rle = generate_dataset(tmp_path / "rle", compression="rle", **kw)
    assert rle.variant_counts["syntax_rle"] == rle.n_slices
    for path in sorted(plain.dicom_dir.rglob("*.dcm")):
        twin = rle.dicom_dir / path.relative_to(plain.dicom_dir)
        a, b = pydicom.dcmread(path), pydicom.dcmread(twin)
        assert b.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        np.testing.assert_array_equal(a.pixel_array, b.pixel_array)


def test_refuses_a_used_folder(tmp_path):
    generate_dataset(tmp_path, patients=1, size=48, slices_per_study=8, malformed=False)
    with pytest.raises(FileExistsError, match="dicom"):
        generate_dataset(tmp_path, patients=1, size=48, slices_per_study=8)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="patients"):
        generate_dataset(tmp_path, patients=0, size=48)
    with pytest.raises(ValueError, match="compression"):
        generate_dataset(tmp_path, patients=1, size=48, compression="zip")


def test_preview_written(six_patients):
    png = six_patients.preview_png
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli(tmp_path, capsys):
    rc = main(["synth", "--out", str(tmp_path), "--patients", "1", "--size", "48", "--slices", "8",
               "--seed", "1", "--no-malformed"])
    out = capsys.readouterr().out
    assert rc == 0 and "slices/s" in out
    assert re.search(r"wrote (8|16) slices", out), out  # one study, or two with a follow-up
    assert (tmp_path / "labels.csv").is_file() and not list(tmp_path.rglob("*.png"))


def test_preview_columns_cover_bleeds_and_the_whole_scan():
    from ich_ray.synthetic.preview import pick_slices

    labels = np.zeros((20, 6), np.uint8)
    labels[8:12, [1, 5]] = 1
    chosen = pick_slices(labels, max_columns=8)
    assert 6 <= len(chosen) <= 8 and {8, 11} <= set(chosen) and chosen[0] == 0 and chosen[-1] == 19
