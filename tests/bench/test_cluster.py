"""``uvgate-bench cluster``: a short bounded run, one node against two through Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.served import ROOT


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_cluster_bench_runs_both_setups(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "bench", "cluster", "--subscribers", "20", "--duration", "0.5",
            "--rounds", "1", "--latency-subscribers", "5", "--out", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "cluster.json").read_text())
    for job in ("cost", "latency"):
        for setup in ("single", "cluster"):
            (run,) = result["rounds"][job][setup]
            assert run["published"] > 0 and run["lost"] == 0, (job, setup, run)
            assert run["server_us_per_delivery"] > 0
        ratio = result["summary"][job]["cluster_vs_single"]["server_us_per_delivery"]
        assert ratio is not None and ratio > 0
    text = (tmp_path / "cluster.md").read_text()
    assert "Cluster / single" in text and "| cluster |" in text
