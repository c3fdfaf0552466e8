"""Blocking metrics and truth pairs on tiny fixtures, and the `block` command end to end."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from blocking.metrics import blocking_metrics, reduction_ratio, truth_from_column, truth_from_file
from features.records import CatalogError
from flows.cli.app import app


def pairs_frame(rows: list[tuple[str, str, list[str]]]) -> pl.DataFrame:
    a, b, bl = zip(*rows)
    return pl.DataFrame({"left_id": a, "right_id": b, "blockers": bl, "ann_sim": [None] * len(a)},
                        schema={"left_id": pl.String, "right_id": pl.String, "blockers": pl.List(pl.String), "ann_sim": pl.Float32})


def test_truth_from_column_one_catalog_with_singleton_value():
    records = pl.DataFrame({"id": ["a", "b", "c", "d", "e", "f"], "cluster_id": [1, 1, 1, 7, 7, 2]})
    truth = truth_from_column(records, "cluster_id")
    assert truth.rows() == [("a", "b"), ("a", "c"), ("b", "c"), ("d", "e")]
    # A catch-all value pairs with nothing.
    assert truth_from_column(records, "cluster_id", singletons=("7",)).height == 3


def test_truth_from_column_two_sources():
    left = pl.DataFrame({"id": ["1", "2"], "cluster_id": [5, 6]})
    right = pl.DataFrame({"id": ["1", "9"], "cluster_id": [6, 5]})
    assert truth_from_column(left, "cluster_id", right).rows() == [("1", "9"), ("2", "1")]


def test_truth_from_file_reads_matches_and_labelled_pairs(tmp_path):
    path = tmp_path / "matches.csv"
    path.write_text("ltable_id,rtable_id\n2,1\n1,2\n3,4\n")
    assert truth_from_file(path, two_sources=True).rows() == [("1", "2"), ("2", "1"), ("3", "4")]
    # One catalog: an unordered pair counts once.
    assert truth_from_file(path, two_sources=False).rows() == [("1", "2"), ("3", "4")]
    labelled = tmp_path / "test.csv"
    labelled.write_text("ltable_id,rtable_id,label\n1,2,1\n1,3,0\n")
    assert truth_from_file(labelled, two_sources=True).rows() == [("1", "2")]
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(CatalogError, match="ltable_id"):
        truth_from_file(bad, two_sources=True)


def test_blocking_metrics_on_a_tiny_fixture():
    truth = pl.DataFrame({"left_id": ["b", "c", "e"], "right_id": ["a", "d", "f"]})  # b-a given in reverse
    pairs = pairs_frame([("a", "b", ["ann", "model"]), ("c", "d", ["ann"]), ("a", "c", ["sorted"])])
    m = blocking_metrics(pairs, truth, n_left=6)
    assert m.true_pairs == 3 and m.found == 2
    assert m.pair_completeness == pytest.approx(2 / 3, abs=1e-4)
    assert m.candidates_per_record == pytest.approx(3 / 6, abs=1e-3)
    assert m.reduction_ratio == pytest.approx(1 - 3 / 15, abs=1e-6)
    assert m.completeness_per_blocker == {"ann": pytest.approx(2 / 3, abs=1e-4), "model": pytest.approx(1 / 3, abs=1e-4), "sorted": 0.0}
    assert m.only_found_by == {"ann": 1, "model": 0, "sorted": 0}
    assert reduction_ratio(10, 5, 4) == pytest.approx(1 - 10 / 20)


def test_completeness_is_undefined_without_true_pairs():
    m = blocking_metrics(pairs_frame([("a", "b", ["ann"])]), pl.DataFrame(schema={"left_id": pl.String, "right_id": pl.String}),
                         n_left=3)
    assert m.true_pairs == 0 and m.pair_completeness is None and m.completeness_per_blocker == {"ann": None}


def test_block_command_prints_completeness_and_writes_pairs(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "id,title,brand,model_number,product_id\n"
        "1,Acme Cordless Drill 18V,Acme,DX-4410,p1\n"
        "2,Power drill cordless 18 volt,Acme,dx4410,p1\n"
        "3,Garden hose green 20m,Hoseco,,p2\n"
        "4,Green garden hose 20 m,Hoseco,,p2\n"
        "5,Steel kettle 1.7 litre,Brewer,,p3\n"
    )
    settings = tmp_path / "blocking.json"
    settings.write_text(json.dumps({"backend": "static", "cache_dir": str(tmp_path / "cache"), "k": 2}))
    out, report = tmp_path / "pairs.parquet", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["block", str(catalog), "--settings", str(settings), "--out", str(out), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "pair completeness 1.0000 (2/2)" in result.output
    pairs = pl.read_parquet(out)
    assert {("1", "2"), ("3", "4")} <= set(pairs.select("left_id", "right_id").rows())
    data = json.loads(report.read_text())
    assert data["metrics"]["found"] == 2 and data["report"]["total_candidates"] == pairs.height
    # Every listing its own product: no true pair to find, and no completeness to claim.
    singles = tmp_path / "singles.csv"
    singles.write_text("id,title,product_id\n1,Acme drill,p1\n2,Acme drill kit,p2\n")
    result = CliRunner().invoke(app, ["block", str(singles), "--settings", str(settings), "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "pair completeness undefined" in result.output
    assert json.loads(report.read_text())["metrics"]["pair_completeness"] is None


def test_block_command_rejects_bad_settings(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,title\n1,a\n")
    settings = tmp_path / "blocking.json"
    settings.write_text(json.dumps({"k": 0}))
    result = CliRunner().invoke(app, ["block", str(catalog), "--settings", str(settings)])
    assert isinstance(result.exception, CatalogError)
