"""Write examples/digits.npz from scikit-learn's bundled 8x8 digits (run once; the file is committed).

    python scripts/make_digits_npz.py                     # with scikit-learn installed
    python scripts/make_digits_npz.py --csv digits.csv.gz # sklearn/datasets/data/digits.csv.gz of a wheel

scikit-learn is not an mcuflow dependency: the 1,797 images are 45 KB compressed, so the project ships
them instead of a 40 MB package (plus scipy) that tests would import only for this. The arrays are
``x`` uint8 (1797, 8, 8), values 0..16, and ``y`` uint8 (1797,), in scikit-learn's order; there is no
test split in the file: ``mcuflow.data.load_data`` holds out a seeded 20% and says so.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "examples" / "digits.npz"


def digits_table(csv: Path | None) -> np.ndarray:
    if csv is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        return np.column_stack([d.data, d.target])
    opener = gzip.open if csv.suffix == ".gz" else open
    with opener(csv, "rt") as f:
        return np.loadtxt(f, delimiter=",")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=None, help="scikit-learn's digits.csv.gz (instead of importing it)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    table = digits_table(args.csv)
    x, y = table[:, :64], table[:, 64]
    assert table.shape == (1797, 65) and x.min() == 0 and x.max() == 16 and set(np.unique(y)) == set(range(10))
    np.savez_compressed(args.out, x=x.astype(np.uint8).reshape(-1, 8, 8), y=y.astype(np.uint8))
    print(f"wrote {args.out}: x {x.shape[0]} images 8x8 (0..16), y {len(y)} labels")


if __name__ == "__main__":
    main()
