"""End to end: CLI indexing, a real `semsearch serve` process, queries over HTTP (SciFact subset).

The service's nDCG@10 must match, within 1%, what the raw model gives with exact search.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_scifact_ndcg_over_http_matches_direct_model() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "evaluate.py"), "--data",
         str(REPO / "tests" / "data" / "scifact"), "--modes", "dense", "--compare-direct", "--json",
         "--no-chunk"],  # one vector per document, as the direct model scores them
        capture_output=True, text=True, timeout=880, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["queries"], result["documents"]) == (100, 480)
    dense = result["modes"]["dense"]
    service, direct = dense["ndcg@10"], result["direct"]["ndcg@10"]
    assert abs(service - direct) <= 0.01 * direct, result
    # SciFact with MiniLM is 0.645 on the full corpus; this subset has fewer distractors.
    assert service > 0.6, result
    assert dense["recall@100"] > 0.9, result
