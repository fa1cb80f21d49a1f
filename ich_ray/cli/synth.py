"""`ich-ray synth`: write a seeded synthetic head-CT DICOM set with RSNA-format labels."""

from __future__ import annotations

HELP = "Write a synthetic head-CT DICOM set with RSNA-format labels."


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (dicom/, labels.csv, ...)")
    parser.add_argument("--patients", type=int, required=True, metavar="N", help="number of patients")
    parser.add_argument("--size", type=int, default=512, metavar="PX", help="matrix size (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--slices", type=int, default=20, metavar="K", help="slices per study (default 20)")
    parser.add_argument("--compression", choices=("none", "rle", "jpeg2000", "mixed"), default="none",
                        help="transfer syntax of the pixel data (default none)")
    parser.add_argument("--no-malformed", dest="malformed", action="store_false",
                        help="skip the truncated, non-DICOM and empty files")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--difficulty", choices=("standard", "hard"), default="standard",
                        help="standard (fast, for tests) or hard (the benchmark: hyperdense mimics, partial volume, "
                             "small bleeds, varied anatomy and noise); default standard")


def run(args) -> int:
    from ich_ray.synthetic.generate import generate_dataset

    s = generate_dataset(args.out, patients=args.patients, size=args.size, seed=args.seed,
                         slices_per_study=args.slices, malformed=args.malformed,
                         compression=args.compression, preview=args.preview, difficulty=args.difficulty)
    print(f"wrote {s.n_slices} slices ({s.n_positive} with a bleed) in {s.n_files} files "
          f"({s.n_malformed} malformed) under {s.dicom_dir}")
    print(f"labels: {s.labels_csv}  positives per label: "
          + ", ".join(f"{k}={v}" for k, v in s.label_counts.items()))
    print("variants (slices): " + ", ".join(f"{k}={v}" for k, v in s.variant_counts.items()))
    if s.preview_png:
        print(f"preview: {s.preview_png}")
    print(f"speed: {s.slices_per_s:.1f} slices/s ({s.seconds:.1f} s)")
    return 0
