"""The model registry: numbered versions, the current pointer, gated and forced promotions."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import features.io
from features.records import CatalogError
from matching.flips import compare_models
from matching.model import train_matcher
from matching.registry import PromotionRefused, Registry
from matching.settings import GateSettings, MatcherSettings

FAST = dict(mode="binary", num_boost_round=60, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def models():
    """Three matchers on make-believe features: a baseline, its exact retrain, and a rival that
    reads a different feature and so disagrees with the baseline on many evaluation pairs."""
    rng = np.random.default_rng(3)
    y = np.where(rng.random(600) < 0.4, "match", "distinct")
    noisy = lambda share: np.where(rng.random(600) < share, 1.0 - (y == "match"), (y == "match")).astype(np.float32)
    frame = pl.DataFrame({"left_id": [f"l{i}" for i in range(600)], "right_id": [f"r{i}" for i in range(600)],
                          "a": noisy(0.1), "b": noisy(0.1)})
    train, evaluation = frame[:400], frame[400:]
    base = train_matcher(train, y[:400], MatcherSettings(seed=0, **FAST), feature_names=["a"])
    same = train_matcher(train, y[:400], MatcherSettings(seed=0, **FAST), feature_names=["a"])
    rival = train_matcher(train, y[:400], MatcherSettings(seed=0, **FAST), feature_names=["b"])
    return base, same, rival, evaluation, y[400:]


def _report(registry: Registry, old_version: str, new_version: str, old, new, evaluation, labels):
    report, flips = compare_models(old, new, evaluation, labels)
    report = report.model_copy(update={"old_model": old_version, "new_model": new_version})
    registry.save_comparison(new_version, report, flips)
    return report


def test_versions_are_numbered_and_carry_metadata(models, tmp_path):
    base, same, *_ = models
    registry = Registry(tmp_path / "reg", create=True)
    first = registry.add(base, notes={"labels": "train.csv"})
    second = registry.add(same, parent=first.version, metrics={"f1": 0.9})
    assert (first.version, second.version) == ("v0001", "v0002")
    assert registry.versions() == ["v0001", "v0002"]
    assert registry.current() is None
    entry = registry.entry("2")
    assert entry.parent == "v0001" and entry.metrics == {"f1": 0.9}
    assert entry.training_data_hash == same.meta["training_data_sha256"] and len(entry.training_data_hash) == 64
    assert registry.entry("v0001").metrics == base.meta["validation_metrics"]
    assert (registry.model_dir("v0001") / "model.txt").is_file()
    with pytest.raises(CatalogError, match="no model version 'v0009'"):
        registry.resolve("v0009")
    with pytest.raises(CatalogError, match="no model has been promoted"):
        registry.resolve("current")
    with pytest.raises(CatalogError, match="not found"):
        Registry(tmp_path / "missing")


def test_promotion_passes_gate_and_is_logged(models, tmp_path):
    base, same, _, evaluation, labels = models
    registry = Registry(tmp_path / "reg", create=True)
    registry.add(base)
    registry.add(same, parent="v0001")
    first = registry.promote("v0001", GateSettings())
    assert first.outcome == "promoted" and first.previous is None and registry.current() == "v0001"
    with pytest.raises(CatalogError, match="no comparison of v0002"):
        registry.promote("v0002", GateSettings())
    report = _report(registry, "v0001", "v0002", base, same, evaluation, labels)
    stored, flips = registry.comparison("v0002")
    assert stored == report and flips.height == 0
    second = registry.promote("v0002", GateSettings(), report=report)
    assert second.outcome == "promoted" and second.gate.passed
    assert registry.resolve("current") == "v0002"
    assert [(p.version, p.previous, p.outcome) for p in registry.history()] == [
        ("v0001", None, "promoted"), ("v0002", "v0001", "promoted")]


def test_gate_refuses_and_force_records_reason(models, tmp_path):
    base, _, rival, evaluation, labels = models
    registry = Registry(tmp_path / "reg", create=True)
    registry.add(base)
    registry.promote("v0001", GateSettings())
    registry.add(rival, parent="current")
    report = _report(registry, "v0001", "v0002", base, rival, evaluation, labels)
    assert report.negative_flips > 0
    with pytest.raises(PromotionRefused, match="negative flip rate"):
        registry.promote("v0002", GateSettings(), report=report)
    assert registry.current() == "v0001"
    with pytest.raises(CatalogError, match="needs a reason"):
        registry.promote("v0002", GateSettings(), report=report, force=True, reason="  ")
    forced = registry.promote("v0002", GateSettings(), report=report, force=True, reason="new brand feed")
    assert forced.outcome == "forced" and registry.current() == "v0002"
    logged = json.loads((tmp_path / "reg" / "registry.json").read_text())["promotions"]
    assert [p["outcome"] for p in logged] == ["promoted", "refused", "forced"]
    assert logged[2]["reason"] == "new brand feed"
    assert logged[2]["comparison"]["negative_flips"] == report.negative_flips
    assert logged[1]["gate"]["reasons"] and not logged[1]["gate"]["passed"]


def test_pointer_update_is_atomic(models, tmp_path, monkeypatch):
    base, same, _, evaluation, labels = models
    registry = Registry(tmp_path / "reg", create=True)
    registry.add(base)
    registry.add(same)
    registry.promote("v0001", GateSettings())
    report = _report(registry, "v0001", "v0002", base, same, evaluation, labels)
    real_replace = features.io.os.replace

    def crash_on_pointer(src, dst):
        if str(dst).endswith("current"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(features.io.os, "replace", crash_on_pointer)
    with pytest.raises(OSError, match="disk full"):
        registry.promote("v0002", GateSettings(), report=report)
    assert (tmp_path / "reg" / "current").read_text() == "v0001\n"
    assert [p.version for p in registry.history()] == ["v0001"]
    assert not [p.name for p in (tmp_path / "reg").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(features.io.os, "replace", real_replace)
    assert registry.promote("v0002", GateSettings(), report=report).outcome == "promoted"
    assert registry.current() == "v0002"


def test_failed_save_leaves_no_version(models, tmp_path):
    base, *_ = models
    registry = Registry(tmp_path / "reg", create=True)
    registry.add(base)

    class Broken:
        meta: dict = {}

        def save(self, path):
            (path / "model.txt").write_text("half a model")
            raise OSError("disk full")

    with pytest.raises(OSError):
        registry.add(Broken())
    assert registry.versions() == ["v0001"]
    assert sorted(p.name for p in (tmp_path / "reg").iterdir() if not p.name.startswith(".lock")) == ["v0001"]
    assert registry.add(base).version == "v0002"


def test_scheduled_runs_follow_the_registry_current_version(models, tmp_path):
    from flows.dedup import scheduled_params
    from flows.settings import ServeSettings

    base, same, _, evaluation, labels = models
    registry = Registry(tmp_path / "reg", create=True)
    registry.add(base)
    registry.add(same, parent="v0001")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,title\n1,a\n", encoding="utf-8")
    config = ServeSettings(catalog=catalog, output_root=tmp_path / "runs", registry=tmp_path / "reg")
    with pytest.raises(CatalogError, match="no model has been promoted"):
        scheduled_params(config)
    registry.promote("v0001", GateSettings())
    assert scheduled_params(config).model == registry.model_dir("v0001")
    # A promotion reaches the next run without touching the deployment's config.
    registry.promote("v0002", GateSettings(), report=_report(registry, "v0001", "v0002", base, same, evaluation, labels))
    assert scheduled_params(config).model == registry.model_dir("v0002")
    assert ServeSettings.model_validate_json(config.model_dump_json()) == config
    plain = ServeSettings(catalog=catalog, output_root=tmp_path / "runs", model=registry.model_dir("v0001"))
    assert scheduled_params(plain).model == registry.model_dir("v0001")
