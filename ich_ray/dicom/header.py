"""DICOM header -> one flat, PHI-free record.

Only the allowlisted tags in `HEADER_FIELDS` are ever read, so patient names, birth dates, addresses,
accession numbers, institutions and physician names cannot leak: nothing else is copied.

Header parsing is the hot path of the metadata stage (one call per file), so values are read from the raw
bytes pydicom leaves unconverted (`Dataset.get_item`) instead of going through pydicom's value conversion
(DSfloat/IS validation, MultiValue), which costs about as much as parsing the whole header. Anything unusual
(a VR other than the expected one, non-ASCII text, an element pydicom has already converted) falls back
to pydicom's own conversion, so the fast path never changes a value, it only skips work.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

log = logging.getLogger(__name__)

# column -> (python type, tag, value kind, index into a multi-valued element)
# kinds: "text" (UI/CS/LO/SH), "number" (DS/IS, backslash-separated), "ushort" (US).
_SPEC: dict[str, tuple[type, int, str, int]] = {
    "sop_instance_uid": (str, 0x00080018, "text", 0),
    "study_instance_uid": (str, 0x0020000D, "text", 0),
    "series_instance_uid": (str, 0x0020000E, "text", 0),
    "patient_id": (str, 0x00100020, "text", 0),
    "rows": (int, 0x00280010, "ushort", 0),
    "columns": (int, 0x00280011, "ushort", 0),
    "pixel_spacing_row": (float, 0x00280030, "number", 0),
    "pixel_spacing_col": (float, 0x00280030, "number", 1),
    "slice_thickness": (float, 0x00180050, "number", 0),
    "image_position_x": (float, 0x00200032, "number", 0),
    "image_position_y": (float, 0x00200032, "number", 1),
    "image_position_z": (float, 0x00200032, "number", 2),
    **{f"image_orientation_{i}": (float, 0x00200037, "number", i) for i in range(6)},
    "gantry_tilt": (float, 0x00181120, "number", 0),
    "bits_allocated": (int, 0x00280100, "ushort", 0),
    "bits_stored": (int, 0x00280101, "ushort", 0),
    "high_bit": (int, 0x00280102, "ushort", 0),
    "pixel_representation": (int, 0x00280103, "ushort", 0),
    "rescale_intercept": (float, 0x00281052, "number", 0),
    "rescale_slope": (float, 0x00281053, "number", 0),
    "window_center": (float, 0x00281050, "number", 0),
    "window_width": (float, 0x00281051, "number", 0),
    "window_center_1": (float, 0x00281050, "number", 1),
    "window_width_1": (float, 0x00281051, "number", 1),
    "transfer_syntax_uid": (str, 0x00020010, "text", 0),
    "modality": (str, 0x00080060, "text", 0),
    "manufacturer": (str, 0x00080070, "text", 0),
    "photometric_interpretation": (str, 0x00280004, "text", 0),
}

HEADER_FIELDS: dict[str, type] = {name: spec[0] for name, spec in _SPEC.items()}
# As pydicom's own tag type, which its lookups take as is (an int goes through `pydicom.tag.Tag` first):
# these lookups run ~60 times per file in the metadata stage (the record, the checks, the rescale).
_SPEC = {name: (py_type, BaseTag(tag), kind, index) for name, (py_type, tag, kind, index) in _SPEC.items()}

_FAST_VRS = {"text": {"UI", "CS", "LO", "SH"}, "number": {"DS", "IS"}, "ushort": {"US"}}


def _from_raw(raw: RawDataElement, kind: str, index: int) -> tuple[bool, Any]:
    """(handled, value) from undecoded bytes; handled=False asks for pydicom's conversion instead."""
    if raw.VR is not None and raw.VR not in _FAST_VRS[kind]:
        return False, None
    data = raw.value
    if not data:
        return True, None
    if kind == "ushort":
        if len(data) < 2 * (index + 1):
            return True, None
        return True, struct.unpack_from("<H" if raw.is_little_endian else ">H", data, 2 * index)[0]
    if not data.isascii():
        return False, None  # a specific character set: let pydicom decode it
    parts = data.split(b"\\")
    if index >= len(parts):
        return True, None
    text = parts[index].strip(b" \x00")
    if not text:
        return True, None
    if kind == "text":
        return True, text.decode("ascii")
    return True, float(text)


def _from_value(value: Any, kind: str, index: int) -> Any:
    """The same extraction from an already converted pydicom value (str, DSfloat, IS, MultiValue, ...)."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[index] if index < len(value) else None
    elif index > 0:
        value = None
    if value is None or value == "":
        return None
    if kind == "text":
        return str(value).strip(" \x00") or None
    if kind == "ushort":
        return int(value)
    return float(value)


def tag_value(ds: Dataset, name: str, path: str = "") -> Any:
    """One `HEADER_FIELDS` column from `ds` (or its file meta), None when absent or unparseable."""
    py_type, tag, kind, index = _SPEC[name]
    source = getattr(ds, "file_meta", None) if tag >> 16 == 0x0002 else ds
    elem = None if source is None else source.get_item(tag)  # None when absent
    if elem is None:
        return None
    try:
        if isinstance(elem, RawDataElement):
            handled, value = _from_raw(elem, kind, index)
            if handled:
                return value
            elem = source[tag]  # pydicom converts it (and caches the conversion)
        value = _from_value(elem.value, kind, index)
    except (ValueError, NotImplementedError) as exc:
        # e.g. a DS holding "n/a", or a corrupt VR pydicom does not know (NotImplementedError): the column is
        # unknown, the file still usable (the plausibility checks refuse it if the element matters for pixels)
        log.warning("%s: unparseable %s (%s): %s", path, name, tag_name(tag), exc)
        return None
    return py_type(value) if value is not None else None


def column_tag(name: str) -> int:
    """The DICOM tag a `HEADER_FIELDS` column is read from."""
    return _SPEC[name][1]


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def header_record(ds: Dataset, path: str) -> dict[str, Any]:
    """Exactly the `HEADER_FIELDS` keys, None where a tag is absent or holds no usable value.

    `path` names the file in the warning logged for an unparseable value.
    """
    return {name: tag_value(ds, name, path) for name in _SPEC}
