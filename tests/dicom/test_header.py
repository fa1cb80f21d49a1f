"""header_record: exact keys, known values on the real GE series, odd values, and no PHI ever."""

from __future__ import annotations

import logging

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from ich_ray.dicom import HEADER_FIELDS, header_record, read_dicom, read_slice


def test_fields_are_ordered_and_typed():
    names = list(HEADER_FIELDS)
    assert names[:4] == ["sop_instance_uid", "study_instance_uid", "series_instance_uid", "patient_id"]
    assert names.index("window_center") < names.index("window_center_1")
    assert [f"image_orientation_{i}" for i in range(6)] == [n for n in names if n.startswith("image_orient")]
    assert set(HEADER_FIELDS.values()) == {str, int, float}
    assert HEADER_FIELDS["rows"] is int and HEADER_FIELDS["gantry_tilt"] is float


def test_real_ge_series(real_ct_files):
    records = [header_record(read_dicom(p, pixels=False), str(p)) for p in real_ct_files]
    for record in records:
        assert list(record) == list(HEADER_FIELDS)
        for name, value in record.items():
            assert value is None or type(value) is HEADER_FIELDS[name], name
    first = records[0]
    assert first["rows"] == first["columns"] == 512
    assert first["rescale_intercept"] == 0.0 and first["rescale_slope"] == 1.0
    assert first["pixel_spacing_row"] == first["pixel_spacing_col"] == 0.4882812
    assert first["slice_thickness"] == 4.0
    assert (first["image_position_x"], first["image_position_y"], first["image_position_z"]) == (
        -125.0,
        -123.5404569,
        5.8360586,
    )
    assert first["image_orientation_4"] == 0.9483237 and first["image_orientation_5"] == -0.3173047
    assert (first["bits_allocated"], first["bits_stored"], first["high_bit"]) == (16, 16, 15)
    assert first["pixel_representation"] == 1
    assert (first["window_center"], first["window_width"]) == (35.0, 100.0)
    assert first["window_center_1"] is None and first["window_width_1"] is None  # single-valued here
    assert first["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"
    assert first["modality"] == "CT" and first["manufacturer"] == "GE MEDICAL SYSTEMS"
    assert first["photometric_interpretation"] == "MONOCHROME2"
    assert first["patient_id"] == "QMNx85rKkkg"
    # one tilted GE series: every slice has the same non-zero gantry tilt, one series, increasing z
    assert {r["gantry_tilt"] for r in records} == {18.5}
    assert len({r["series_instance_uid"] for r in records}) == 1
    assert len({r["sop_instance_uid"] for r in records}) == 28
    zs = [r["image_position_z"] for r in records]
    assert zs == sorted(zs)


def test_phi_is_never_copied(write_ct, ramp):
    path = write_ct("phi.dcm", ramp, phi=True)
    ds = pydicom.dcmread(path)
    assert ds.PatientName == "Doe^Jane" and ds.AccessionNumber == "ACC123456"  # the PHI is in the file
    record, _ = read_slice(path)
    text = repr(record).lower()
    for secret in ("doe", "jane", "1970", "secret lane", "acc123456", "springfield", "hospital road"):
        assert secret not in text
    for secret in ("house", "wilson", "cuddy"):
        assert secret not in text
    for key in record:
        assert not any(word in key for word in ("name", "birth", "address", "accession", "institution"))


def test_multi_valued_windows_and_odd_values(write_ct, ramp, caplog):
    path = write_ct(
        "odd.dcm",
        ramp,
        WindowCenter=["40", "80"],
        WindowWidth=["80", "200"],
        SliceThickness="",  # present but empty
        GantryDetectorTilt="12.5",  # replaced below by a value that is not a number
        Manufacturer="  PADDED  ",
    )
    data = path.read_bytes()
    assert data.count(b"12.5") == 1
    path.write_bytes(data.replace(b"12.5", b"n/a "))
    with caplog.at_level(logging.WARNING, logger="ich_ray.dicom.header"):
        record = header_record(read_dicom(path, pixels=False), str(path))
    assert (record["window_center"], record["window_center_1"]) == (40.0, 80.0)
    assert (record["window_width"], record["window_width_1"]) == (80.0, 200.0)
    assert record["slice_thickness"] is None
    assert record["gantry_tilt"] is None
    assert str(path) in caplog.text and "gantry_tilt" in caplog.text
    assert record["manufacturer"] == "PADDED"
    assert record["pixel_spacing_row"] is None and record["image_position_z"] is None  # missing tags


def test_in_memory_dataset_matches_file(write_ct, make_ct, ramp):
    """Converted values (a dataset built in code) and raw bytes (read back) give the same record."""
    ds = make_ct(
        ramp,
        PixelSpacing=[0.5, 0.25],
        ImagePositionPatient=[-1.5, 2, 3.25],
        WindowCenter=["40", "80"],
        WindowWidth="80",
        SliceThickness="5.0",
    )
    path = write_ct("roundtrip.dcm", ds)
    from_file = header_record(read_dicom(path), str(path))
    in_memory = header_record(ds, "in-memory")
    assert from_file == in_memory
    assert from_file["pixel_spacing_col"] == 0.25 and from_file["image_position_y"] == 2.0
    assert from_file["rescale_intercept"] == -1024.0


def test_implicit_vr_and_non_ascii_text(write_ct, make_ct, ramp):
    ds = make_ct(ramp, transfer_syntax=ImplicitVRLittleEndian, SpecificCharacterSet="ISO_IR 192")
    ds.Manufacturer = "Größe Medical"
    path = write_ct("implicit.dcm", ds)
    record = header_record(read_dicom(path), str(path))
    assert record["manufacturer"] == "Größe Medical"
    assert record["transfer_syntax_uid"] == ImplicitVRLittleEndian
    assert record["rows"] == 64 and record["bits_stored"] == 16 and record["rescale_intercept"] == -1024.0
