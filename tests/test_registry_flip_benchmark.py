"""`flip-benchmark` on a small pairs-layout dataset built from the sample catalog."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import registry as _registry_commands  # noqa: F401  (registers them on the app)
from flows.cli.app import app
from flows.settings import SAMPLE_CATALOG


@pytest.mark.slow
def test_flip_benchmark_on_pairs_layout(tmp_path):
    catalog = pl.read_csv(SAMPLE_CATALOG, infer_schema_length=0)
    listed = catalog.with_columns(pl.col("id").cum_count().over("product_id").alias("nth"))
    twice = (listed.filter((pl.col("nth") <= 2) & (pl.col("id").count().over("product_id") >= 2))
             .sort("product_id", "nth").head(400))
    columns = ["title", "brand", "price", "color", "size", "model_number"]
    left, right = (twice.filter(pl.col("nth") == k).select(columns) for k in (1, 2))
    # Both sources number their records 0.., as benchmark tables do, so ids collide across sides;
    # row i of the left source is the same product as row i of the right one.
    rng = np.random.default_rng(0)
    n = left.height
    right_ids = rng.permutation(n)
    left.with_columns(pl.Series("id", np.arange(n))).write_csv(tmp_path / "tableA.csv")
    right.with_columns(pl.Series("id", right_ids)).write_csv(tmp_path / "tableB.csv")
    matches = pl.DataFrame({"ltable_id": np.arange(n), "rtable_id": right_ids, "label": 1})
    a, b = rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)
    others = pl.DataFrame({"ltable_id": a[a != b], "rtable_id": right_ids[b[a != b]], "label": 0})
    pairs = pl.concat([matches, others]).unique(["ltable_id", "rtable_id"], keep="first").sample(fraction=1.0, seed=1)
    cut = [0, pairs.height * 6 // 10, pairs.height * 8 // 10, pairs.height]
    for name, lo, hi in zip(("train", "valid", "test"), cut, cut[1:]):
        pairs[lo:hi].write_csv(tmp_path / f"{name}.csv")
    result = CliRunner().invoke(app, ["flip-benchmark", str(tmp_path), "--seeds", "2",
                                      "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "f.json").read_text())
    test_pairs = cut[3] - cut[2]
    assert report["test_pairs"] == test_pairs and [r["seed"] for r in report["runs"]] == [0, 1]
    for run in report["runs"]:
        for kind in ("plain", "congruent"):
            flips = run[kind]["negative_flip_rate"] * test_pairs
            assert abs(flips - round(flips)) < 1e-6 and 0 <= flips <= test_pairs
    mean = np.mean([r["congruent"]["negative_flip_rate"] for r in report["runs"]])
    assert report["mean"]["congruent"]["negative_flip_rate"] == pytest.approx(mean)
    assert report["mean"]["plain"]["old_match_f1"] > 0.5
