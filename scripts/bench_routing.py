"""Where `auto`'s length routing should switch from ONNX int8 to bf16: both backends' texts/s at
several token lengths, side by side in one run (indexer.encoding.length_routing.SHORT_TOKENS).

Example:
  python scripts/bench_routing.py --model all-MiniLM-L6-v2
  python scripts/bench_routing.py --model multilingual-e5-small
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine  # noqa: E402

# Public-domain-style filler: the rate depends on the token count, not on the words.
WORDS = ("the quick brown fox jumps over the lazy dog while a small cat watches from a sunny "
         "window and the morning train leaves the station on time for the city").split()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model [all-MiniLM-L6-v2]")
    parser.add_argument("--words", default="4,8,16,32,64,128,200", help="words per text")
    parser.add_argument("--texts", type=int, default=64, help="texts per length [64]")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds; best kept [4]")
    return parser.parse_args()


def main() -> None:
    from indexer.encoding import load_encoder
    from indexer.encoding.backends import OnnxEncoder

    args = parse_args()
    encoders = {b: load_encoder(args.model, backend=b) for b in ("onnx-int8", "bf16")}
    int8 = encoders["onnx-int8"]
    assert isinstance(int8, OnnxEncoder)
    info = machine()
    print(f"bench_routing, {info['date']}, {info['cpu']}, {info['cpus']} CPUs, flags "
          f"{' '.join(info['flags'])}; model {args.model}; best of {args.rounds} rounds")
    print(f"{'tokens':>7} {'onnx-int8/s':>12} {'bf16/s':>9} {'int8/bf16':>10}")
    for count in (int(w) for w in args.words.split(",")):
        texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(count)) + f" {i}"
                 for i in range(args.texts)]
        tokens = sum(len(ids) for ids in int8.tokenize(texts, "document")[0]) / len(texts)
        best = dict.fromkeys(encoders, 0.0)
        for encoder in encoders.values():
            encoder.encode(texts[:8])  # warm-up
        for _ in range(args.rounds):
            for name, encoder in encoders.items():
                started = time.perf_counter()
                encoder.encode(texts)
                best[name] = max(best[name], len(texts) / (time.perf_counter() - started))
        print(f"{tokens:7.0f} {best['onnx-int8']:12.0f} {best['bf16']:9.0f} "
              f"{best['onnx-int8'] / best['bf16']:9.2f}x", flush=True)


if __name__ == "__main__":
    main()
