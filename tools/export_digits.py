#!/usr/bin/env python3
"""Export scikit-learn's digits data set as .npy training and held-out samples (docs/coverage.md).

    export_digits.py --out DIR [--holdout 0.2] [--seed 0] [--csv]

The data: sklearn.datasets.load_digits(), 1797 handwritten digits of 8x8 pixels with values 0..16,
read from the file scikit-learn ships (nothing is downloaded). Each image is one sample of d = 64
coordinates (row-major pixels), scaled to [-1, 1] by x / 8 - 1 (exact in float32).

The split is a permutation of the 1797 rows by numpy's RandomState(seed), whose stream numpy keeps
fixed across versions, so a seed names the same split everywhere: the first round(holdout * 1797)
rows of the permutation are held out, the rest are the training set; each keeps the original order.

Writes into DIR (created if missing):
  digits_train.npy            float32, (n_train, 64)
  digits_holdout.npy          float32, (n_holdout, 64)   (not written with --holdout 0)
  digits_train_labels.npy     int32, (n_train,)    the digit 0..9 of each row
  digits_holdout_labels.npy   int32, (n_holdout,)
  digits_train.csv, digits_holdout.csv   with --csv: one sample per line, 64 numbers separated by
                              commas (the CSV samples format of `taep train`, README "taep train")
Prints one line per file. Exit status 2 for bad arguments, 3 when numpy or scikit-learn is missing.
"""
import argparse
import os
import sys

DIM = 64


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Export scikit-learn's digits (1797 images, 8x8, d = 64) as float32 .npy in [-1, 1] "
                    "with a deterministic train / held-out split.")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="fraction of the images held out, 0 <= f < 1 (default 0.2)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, numpy RandomState (default 0)")
    p.add_argument("--csv", action="store_true", help="also write the samples as CSV")
    a = p.parse_args(argv)
    if not 0.0 <= a.holdout < 1.0:
        p.error(f"--holdout must be in [0, 1), got {a.holdout}")
    if not 0 <= a.seed < 2**32:
        p.error(f"--seed must be in [0, 2^32), got {a.seed}")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        import numpy as np
        from sklearn.datasets import load_digits
    except ImportError as e:
        print(f"export_digits.py: {e}; needs numpy and scikit-learn (Debian: apt-get install "
              "python3-sklearn, then run it with /usr/bin/python3; or pip install scikit-learn)",
              file=sys.stderr)
        return 3

    digits = load_digits()
    pixels = np.asarray(digits.data)
    labels = np.asarray(digits.target, dtype=np.int32)
    n = pixels.shape[0]
    if pixels.shape != (n, DIM) or pixels.min() < 0 or pixels.max() > 16:
        print(f"export_digits.py: unexpected digits data, shape {pixels.shape}", file=sys.stderr)
        return 1
    x = (pixels / 8.0 - 1.0).astype(np.float32)

    n_holdout = int(round(a.holdout * n))
    perm = np.random.RandomState(a.seed).permutation(n)
    held = np.sort(perm[:n_holdout])
    train = np.sort(perm[n_holdout:])

    os.makedirs(a.out, exist_ok=True)
    parts = [("train", train)] + ([("holdout", held)] if n_holdout > 0 else [])
    for name, rows in parts:
        path = os.path.join(a.out, f"digits_{name}.npy")
        np.save(path, np.ascontiguousarray(x[rows]))
        print(f"{path}: {len(rows)} x {DIM} float32")
        path = os.path.join(a.out, f"digits_{name}_labels.npy")
        np.save(path, labels[rows])
        print(f"{path}: {len(rows)} int32")
        if a.csv:
            path = os.path.join(a.out, f"digits_{name}.csv")
            # The values are multiples of 1/8: "%.9g" writes them exactly.
            np.savetxt(path, x[rows], fmt="%.9g", delimiter=",")
            print(f"{path}: {len(rows)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
