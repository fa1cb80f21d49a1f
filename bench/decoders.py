"""Pixel decoder speed on one 512 px CT slice re-encoded in memory (not a test).

Slices/s of each decoder (RLE: pydicom's numpy decoder and pylibjpeg-rle; JPEG 2000: pylibjpeg-openjpeg and
GDCM), by the clock and per CPU second, best of 3 interleaved rounds of ~0.3 s each. bench/preprocess.py
prints these on its `decoders ...` line; alone:

    python bench/decoders.py DICOM_DIR    # the first uncompressed 512 px slice under DICOM_DIR
"""

from __future__ import annotations

import sys
import time

DECODERS = {  # label -> (transfer syntax, pydicom decoding plugin)
    "rle_slices_per_s_numpy": ("RLELossless", "pydicom"),
    "rle_slices_per_s_rle": ("RLELossless", "pylibjpeg"),  # pylibjpeg-rle
    "j2k_slices_per_s": ("JPEG2000Lossless", "pylibjpeg"),  # pylibjpeg-openjpeg
    "j2k_slices_per_s_gdcm": ("JPEG2000Lossless", "gdcm"),
}


def first_native_slice(paths: list[str]) -> str:
    """The first well-formed uncompressed 512 x 512 slice (the synthetic sets mix syntaxes and bad files)."""
    import pydicom

    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            if not ds.file_meta.TransferSyntaxUID.is_compressed and ds.Rows == 512 and ds.pixel_array.ndim == 2:
                return path
        except Exception:  # a malformed file: try the next
            continue
    raise ValueError(f"no readable uncompressed 512 px slice among {len(paths)} files")


def decoder_rates(path: str, seconds: float = 0.3, repeat: int = 3) -> dict[str, float]:
    """Slices/s of each pixel decoder on one 512 px slice re-encoded in memory: `repeat` rounds, each decoder
    timed for ~`seconds` per round, interleaved, best round kept (a few seconds in all).

    Each decoder gets two figures: `..._slices_per_s` by the clock in this one process, and
    `..._per_cpu_s_...` by the CPU time it used. They differ for a decoder that runs threads (GDCM's JPEG 2000):
    a stage that keeps every core busy gets the per-CPU-second rate.
    """
    import pydicom
    import pydicom.uid
    from pydicom.pixels import get_decoder, pixel_array

    encoded = {}
    for syntax in {syntax for syntax, _ in DECODERS.values()}:
        ds = pydicom.dcmread(path)
        ds.compress(getattr(pydicom.uid, syntax))
        encoded[syntax] = ds
    usable = {label: (syntax, plugin) for label, (syntax, plugin) in DECODERS.items()
              if plugin in get_decoder(getattr(pydicom.uid, syntax)).available_plugins}
    per_cpu = {label: label.replace("_per_s", "_per_cpu_s") for label in usable}
    best = dict.fromkeys([*usable, *per_cpu.values()], 0.0)
    for _ in range(repeat):
        for label, (syntax, plugin) in usable.items():
            count, start, cpu_start = 0, time.perf_counter(), time.process_time()
            while (elapsed := time.perf_counter() - start) < seconds:
                pixel_array(encoded[syntax], decoding_plugin=plugin)
                count += 1
            best[label] = max(best[label], count / elapsed)
            cpu = time.process_time() - cpu_start
            best[per_cpu[label]] = max(best[per_cpu[label]], count / cpu if cpu > 0 else 0.0)
    return best


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    from ich_ray.data.io import list_inputs

    paths = list_inputs(sys.argv[1])["path"].to_list()  # the stages' own listing of a DICOM folder
    rates = decoder_rates(first_native_slice(paths))
    print(" ".join(f"{k}={v:.0f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
