"""The registry commands (promote, registry list) and comparing two runs' clusters."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from flows.cli import registry as _registry_commands  # noqa: F401  (registers them on the app)
from flows.cli.app import app
from flows.model_update import compare_runs
from matching.flips import compare_models
from matching.model import train_matcher
from matching.registry import Registry
from matching.settings import GateSettings, MatcherSettings


@pytest.fixture(scope="module")
def registry_with_rival(tmp_path_factory):
    """v0001 promoted; v0002 reads another noisy feature and flips many held-out pairs."""
    rng = np.random.default_rng(5)
    y = np.where(rng.random(500) < 0.4, "match", "distinct")
    noisy = lambda: np.where(rng.random(500) < 0.1, 1.0 - (y == "match"), (y == "match")).astype(np.float32)
    frame = pl.DataFrame({"left_id": [f"l{i}" for i in range(500)], "right_id": [f"r{i}" for i in range(500)],
                          "a": noisy(), "b": noisy()})
    fast = MatcherSettings(mode="binary", num_boost_round=40, early_stopping_rounds=10)
    old = train_matcher(frame[:300], y[:300], fast, feature_names=["a"])
    new = train_matcher(frame[:300], y[:300], fast, feature_names=["b"])
    registry = Registry(tmp_path_factory.mktemp("reg") / "models", create=True)
    registry.add(old)
    registry.promote("v0001", GateSettings())
    registry.add(new, parent="current")
    report, flips = compare_models(old, new, frame[300:], y[300:])
    registry.save_comparison("v0002", report.model_copy(update={"old_model": "v0001", "new_model": "v0002"}), flips)
    return registry


def test_promote_command_refuses_then_forces_with_reason(registry_with_rival):
    registry = registry_with_rival
    runner = CliRunner()
    refused = runner.invoke(app, ["promote", "v0002", "--registry", str(registry.root)])
    assert refused.exit_code == 1 and "negative flip rate" in refused.output
    assert registry.current() == "v0001"
    invalid = runner.invoke(app, ["promote", "2", "--registry", str(registry.root), "--max-negative-flip-rate", "2"])
    assert invalid.exit_code != 0 and registry.current() == "v0001"
    no_reason = runner.invoke(app, ["promote", "2", "--registry", str(registry.root), "--force"])
    assert no_reason.exit_code != 0 and registry.current() == "v0001"
    forced = runner.invoke(app, ["promote", "2", "--registry", str(registry.root), "--force",
                                 "--reason", "supplier renamed every SKU"])
    assert forced.exit_code == 0, forced.output
    assert registry.current() == "v0002"
    log = json.loads((registry.root / "registry.json").read_text())["promotions"]
    assert log[-1]["outcome"] == "forced" and log[-1]["reason"] == "supplier renamed every SKU"
    listing = runner.invoke(app, ["registry", "list", "--registry", str(registry.root)])
    assert listing.exit_code == 0
    assert "v0001" in listing.output and "forced" in listing.output and "supplier renamed" in listing.output
    path = runner.invoke(app, ["registry", "path", "current", "--registry", str(registry.root)])
    assert path.output.strip() == str(registry.root / "v0002")


def _run(folder, groups: dict[str, str], families: dict[str, str]):
    folder.mkdir()
    pl.DataFrame({"id": list(groups), "duplicate_group_id": list(groups.values()),
                  "variant_family_id": [families[i] for i in groups], "confidence": [1.0] * len(groups)},
                 ).write_parquet(folder / "records.parquet")
    return folder


def test_compare_runs_counts_merged_split_new_retired(tmp_path):
    a = _run(tmp_path / "a", {"r1": "G-a", "r2": "G-a", "r3": "G-b", "r4": "G-c", "r5": "G-d", "r6": "G-d"},
             {"r1": "F-x", "r2": "F-x", "r3": "F-x", "r4": "F-c", "r5": "F-d", "r6": "F-d"})
    # In B: G-b folds into G-a, r4 is gone, G-d falls apart, r7 is new.
    b = _run(tmp_path / "b", {"r1": "1", "r2": "1", "r3": "1", "r5": "2", "r6": "3", "r7": "4"},
             {"r1": "f1", "r2": "f1", "r3": "f1", "r5": "f2", "r6": "f2", "r7": "f4"})
    counts = compare_runs(a, b)
    groups = {e: (c, r) for lv, e, c, r in counts.iter_rows() if lv == "group"}
    assert groups == {"kept": (2, 3), "merged": (1, 1), "split": (1, 1), "new": (1, 1), "retired": (1, 1)}
    families = {e: (c, r) for lv, e, c, r in counts.iter_rows() if lv == "family"}
    assert families == {"kept": (2, 5), "merged": (0, 0), "split": (0, 0), "new": (1, 1), "retired": (1, 1)}
    same = compare_runs(a, a)
    assert same.filter(pl.col("event") != "kept")["clusters"].sum() == 0
    out = CliRunner().invoke(app, ["compare-runs", str(a), str(b), "--json", str(tmp_path / "c.json")])
    assert out.exit_code == 0 and json.loads((tmp_path / "c.json").read_text())[0]["level"] == "group"


@pytest.mark.slow
def test_train_compare_congruent_and_export_end_to_end(tmp_path):
    """`train --registry --compare-to current --holdout --congruent --export` on the sample catalog."""
    from flows.cli import train as _train_commands  # noqa: F401
    from matching.labels import truth_labels
    from flows.settings import SAMPLE_CATALOG

    records = pl.read_csv(SAMPLE_CATALOG, infer_schema_length=0)
    families = records["family_id"].unique(maintain_order=True).head(20)
    records = records.filter(pl.col("family_id").is_in(families.implode()))
    records.write_csv(tmp_path / "catalog.csv")
    ids = records["id"].sort()
    pairs = pl.DataFrame({"left_id": ids}).join(pl.DataFrame({"right_id": ids}), how="cross").filter(
        pl.col("left_id") < pl.col("right_id"))
    labelled = pairs.with_columns(truth_labels(pairs, records, records)).sample(fraction=1.0, seed=0, shuffle=True)
    cut = labelled.height * 7 // 10
    labelled[:cut // 2].write_csv(tmp_path / "half.csv")
    labelled[:cut].write_csv(tmp_path / "full.csv")
    labelled[cut:].write_csv(tmp_path / "holdout.csv")
    reg = tmp_path / "registry"
    runner = CliRunner()

    def train(labels: str, seed: int, *extra: str):
        result = runner.invoke(app, ["train", str(tmp_path / "catalog.csv"), "--labels", str(tmp_path / labels),
                                     "--out", str(tmp_path / f"model-{labels}-{seed}"), "--seed", str(seed),
                                     "--registry", str(reg), *extra])
        assert result.exit_code == 0, result.output
        return result.output

    refused = runner.invoke(app, ["train", str(tmp_path / "catalog.csv"), "--out", str(tmp_path / "x"),
                                  "--registry", str(reg), "--compare-to", "current"])
    assert refused.exit_code != 0 and not (tmp_path / "x").exists()
    leaky = runner.invoke(app, ["train", str(tmp_path / "catalog.csv"), "--labels", str(tmp_path / "full.csv"),
                                "--out", str(tmp_path / "x"), "--registry", str(reg), "--compare-to", "current",
                                "--holdout", str(tmp_path / "half.csv")])
    assert "held-out pairs are also training pairs" in str(leaky.exception) and not (tmp_path / "x").exists()
    train("half.csv", 0)
    assert runner.invoke(app, ["promote", "1", "--registry", str(reg)]).exit_code == 0
    holdout = ["--compare-to", "current", "--holdout", str(tmp_path / "holdout.csv")]
    plain = train("full.csv", 1, *holdout)
    congruent = train("full.csv", 1, *holdout, "--congruent", "--export", str(tmp_path / "flips"))
    assert "registered as v0002" in plain and "registered as v0003" in congruent
    assert "negative flips" in plain and "promotion gate" in congruent
    registry = Registry(reg)
    report, flips = registry.comparison("v0003")
    assert (report.old_model, report.new_model, report.pairs) == ("v0001", "v0003", labelled.height - cut)
    assert report.holdout_sha256 == registry.comparison("v0002")[0].holdout_sha256
    entry = registry.entry("v0003")
    assert entry.parent == "v0001" and entry.notes["congruent"]["correct_weight"] > 1
    review = pl.read_csv(tmp_path / "flips" / "review.csv", infer_schema_length=0)
    assert review.height == flips.height and set(review["flip"].unique()) <= {"negative", "positive"}
    again = runner.invoke(app, ["compare", "v0001", "v0003", "--registry", str(reg), "--labels",
                                str(tmp_path / "holdout.csv"), "--catalog", str(tmp_path / "catalog.csv")])
    assert again.exit_code == 0 and f"negative flips (old right, new wrong): {report.negative_flips} " in again.output


def test_holdout_must_not_repeat_training_pairs(tmp_path):
    from features.records import CatalogError
    from flows.model_update import plan_update

    (tmp_path / "train.csv").write_text("left_id,right_id,label\n1,2,1\n3,4,0\n")
    (tmp_path / "holdout.csv").write_text("left_id,right_id,label\n2,1,1\n5,6,0\n")
    options = dict(compare_to="current", holdout=tmp_path / "holdout.csv", labels=tmp_path / "train.csv")
    # Within one catalog (2, 1) is the training pair (1, 2) again.
    with pytest.raises(CatalogError, match="1 held-out pairs are also training pairs"):
        plan_update(tmp_path / "reg", "binary", **options)
    # Across two sources left 2 / right 1 is another pair, so only the empty registry is in the way.
    with pytest.raises(CatalogError, match="no model has been promoted"):
        plan_update(tmp_path / "reg", "binary", right=tmp_path / "right.csv", **options)
