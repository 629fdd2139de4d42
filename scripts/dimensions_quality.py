"""How much a shortened vector (`dimensions: N`) loses: Spearman of cosine vs gold scores on a
graded pair set, at several N, for one model (the server's own truncate + renormalise).

Example (Chinese STS-B dev, 1,458 pairs):

    python scripts/dimensions_quality.py --model multilingual-e5-small \\
        --pairs ../shared/data/stsb_zh/dev.tsv --dims 384,256,128,64,32
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from indexer.encoding import load_encoder
from search_api.services.embeddings import shorten


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--pairs", type=Path, required=True,
                        help="TSV without header: sentence1, sentence2, gold score")
    parser.add_argument("--dims", default="384,256,128,64,32")
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args()
    rows = [line.rstrip("\n").split("\t") for line in args.pairs.read_text("utf-8").splitlines()]
    gold = [float(row[2]) for row in rows]
    encoder = load_encoder(args.model, backend=args.backend)
    left = encoder.encode([row[0] for row in rows], "query")
    right = encoder.encode([row[1] for row in rows], "query")
    print(f"{args.model} on {args.pairs} ({len(rows)} pairs), backend {args.backend}")
    for dims in (int(d) for d in args.dims.split(",")):
        a, b = shorten(left, dims), shorten(right, dims)
        rho = spearmanr(np.sum(a * b, axis=1), gold).correlation
        print(f"dimensions {dims:4d}: Spearman {rho:.4f}")


if __name__ == "__main__":
    main()
