"""The benchmark on a tiny fixture of each layout, and the train/score/benchmark commands."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from blocking.embed import load_embedder
from blocking.settings import BlockingSettings
from features.records import CatalogError, load_catalog
from flows.benchmark import detect_layout, run_benchmark, split_groups, true_pairs
from flows.cli.app import app
from matching.model import Matcher

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark"
BLOCKING_KEYS = {"pair_completeness", "candidates", "candidates_per_record", "reduction_ratio"}
PRF = {"precision", "recall", "f1"}
# The static embedder keeps these tests fast; the default (torch) is exercised by the benchmark commands.
FAST_BLOCKING = BlockingSettings(cache=False, backend="static")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_MATCH_CACHE", str(tmp_path / "cache"))


def _check_common(report: dict, layout: str) -> None:
    assert report["layout"] == layout and report["dataset"] == layout
    assert BLOCKING_KEYS <= set(report["blocking"])
    assert 0 <= report["blocking"]["pair_completeness"] <= 1
    assert 0 <= report["blocking"]["reduction_ratio"] <= 1
    assert report["seconds"]["total"] >= report["seconds"]["block"] > 0
    assert report["peak_rss_mb"] > 0


@pytest.mark.parametrize("layout", ["pairs", "full", "catalog"])
def test_detects_layout(layout):
    assert detect_layout(FIXTURES / layout) == layout


def test_unknown_layout_is_an_input_error(tmp_path):
    with pytest.raises(CatalogError, match="no benchmark layout"):
        detect_layout(tmp_path)


def test_pairs_layout():
    report = run_benchmark(FIXTURES / "pairs", seed=0, blocking=FAST_BLOCKING)
    _check_common(report, "pairs")
    assert PRF <= set(report["matching"])
    test = pl.read_csv(FIXTURES / "pairs" / "test.csv")
    assert report["matching"]["support"] == test["label"].sum()
    # Model numbers and brands make this fixture easy: a working matcher separates it.
    assert report["matching"]["f1"] >= 0.8
    labelled = pl.concat([pl.read_csv(FIXTURES / "pairs" / f"{s}.csv") for s in ("train", "valid", "test")])
    assert report["blocking"]["true_pairs"] == labelled["label"].sum()


def test_full_layout_reports_blocking_only():
    report = run_benchmark(FIXTURES / "full", seed=0, blocking=FAST_BLOCKING)
    _check_common(report, "full")
    assert "matching" not in report
    assert report["blocking"]["true_pairs"] == pl.read_csv(FIXTURES / "full" / "matches.csv").height


def test_catalog_layout_counts_every_true_pair_of_the_test_half():
    report = run_benchmark(FIXTURES / "catalog", seed=0, blocking=FAST_BLOCKING)
    _check_common(report, "catalog")
    matching = report["matching"]
    assert PRF <= set(matching["duplicate"]) and PRF <= set(matching["variant"])
    assert matching["macro_f1"] == pytest.approx((matching["duplicate"]["f1"] + matching["variant"]["f1"]) / 2)
    # Every true pair among test records is in the confusion table, scored by the model or not.
    _, test = split_groups(load_catalog(FIXTURES / "catalog" / "catalog.csv"), seed=0)
    rows = test.rows(named=True)
    dup = sum(a["product_id"] == b["product_id"] for a, b in itertools.combinations(rows, 2))
    var = sum(a["family_id"] == b["family_id"] and a["product_id"] != b["product_id"]
              for a, b in itertools.combinations(rows, 2))
    assert sum(matching["confusion"]["duplicate"].values()) == dup
    assert sum(matching["confusion"]["variant"].values()) == var
    assert true_pairs(test).group_by("label").len().sort("label").rows() == [("duplicate", dup), ("variant", var)]
    assert matching["variant"]["f1"] >= 0.8
    assert report["blocking"]["pair_completeness"] <= report["scored_pair_completeness"] <= 1
    for level in ("duplicate_groups", "variant_families"):
        assert {"bcubed_precision", "bcubed_recall", "bcubed_f1"} <= set(report["clusters"][level])


def test_split_groups_keeps_families_whole_and_depends_on_seed():
    records = load_catalog(FIXTURES / "catalog" / "catalog.csv")
    train, test = split_groups(records, seed=1)
    assert train.height + test.height == records.height
    assert not set(train["family_id"]) & set(test["family_id"])
    assert set(split_groups(records, seed=2)[0]["id"]) != set(train["id"])


@pytest.fixture
def blocking_file(tmp_path) -> str:
    return str(FAST_BLOCKING.save(tmp_path / "blocking.json"))


def test_train_score_and_benchmark_commands(tmp_path, blocking_file):
    runner = CliRunner()
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", str(FIXTURES / "catalog" / "catalog.csv"), "--out", str(model),
                                 "--blocking", blocking_file])
    assert result.exit_code == 0, result.output
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["embedding_model"] == load_embedder(FAST_BLOCKING).model_id
    assert "catalog.csv" in meta["training_inputs"]
    Matcher.load(model)
    scored_path = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(FIXTURES / "catalog" / "catalog.csv"), "--out", str(scored_path),
                                 "--model", str(model), "--blocking", blocking_file])
    assert result.exit_code == 0, result.output
    scored = pl.read_csv(scored_path)
    assert {"left_id", "right_id", "p_duplicate", "p_variant", "p_distinct", "decision", "uncertainty"} <= set(scored.columns)
    assert set(scored["decision"]) <= {"duplicate", "variant", "distinct"}
    out = tmp_path / "full.json"
    result = runner.invoke(app, ["benchmark", str(FIXTURES / "full"), "--json", str(out), "--seed", "3",
                                 "--blocking", blocking_file])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["layout"] == "full"


def test_train_from_a_labelled_pairs_file(tmp_path, blocking_file):
    model = tmp_path / "model"
    result = CliRunner().invoke(app, [
        "train", str(FIXTURES / "pairs" / "tableA.csv"), "--right", str(FIXTURES / "pairs" / "tableB.csv"),
        "--labels", str(FIXTURES / "pairs" / "train.csv"), "--mode", "binary", "--out", str(model),
        "--blocking", blocking_file,
    ])
    assert result.exit_code == 0, result.output
    assert Matcher.load(model).classes == ("match", "distinct")
    bad = tmp_path / "bad.csv"
    bad.write_text("left_id,right_id,label\n0,1,1\n999,2,0\n")
    with pytest.raises(CatalogError, match=r"bad.csv, row 2, column 'left_id': id '999'"):
        CliRunner().invoke(app, ["train", str(FIXTURES / "pairs" / "tableA.csv"), "--right",
                                 str(FIXTURES / "pairs" / "tableB.csv"), "--labels", str(bad), "--out", str(model),
                                 "--blocking", blocking_file],
                           catch_exceptions=False)


def test_pair_decisions_implied_by_clusters():
    from flows.benchmark import _cluster_pairs_report

    clusters = pl.DataFrame({"id": ["a", "b", "c", "d"], "group_key": ["g1", "g1", "g2", "g3"],
                             "family_key": ["f1", "f1", "f1", "f2"]})
    truth = pl.DataFrame({"left_id": ["a", "a", "b", "c"], "right_id": ["b", "c", "c", "d"],
                          "label": ["duplicate", "variant", "variant", "variant"]})
    report = _cluster_pairs_report(clusters, truth)
    assert report["duplicate"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert report["variant"]["precision"] == 1.0 and report["variant"]["recall"] == pytest.approx(2 / 3)
