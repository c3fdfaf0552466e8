"""The dedup flow end to end under Prefect's test harness: outputs, artifacts, caching, runners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from prefect.testing.utilities import prefect_test_harness

from blocking.embed import load_embedder
from blocking.settings import BlockingSettings
from features.generate import generate_catalog
from features.io import write_table
from features.records import CatalogError
from flows import pipeline
from flows.settings import DedupParams, PipelineSettings, RunnerSettings
from flows.training import train_from_files
from matching.expand import TWO_HOP, two_hop_pairs
from matching.settings import ExpandSettings, MatcherSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flows")
    catalog = write_table(generate_catalog(500, seed=11), root / "catalog.csv")
    blocking = BlockingSettings(cache_dir=root / "emb")
    model = root / "model"
    train_from_files(catalog, model, MatcherSettings(num_boost_round=60, seed=0), blocking)
    return {"root": root, "catalog": catalog, "model": model}


def params(ws: dict[str, Path], out: str, cache: str = "stages", **runner) -> DedupParams:
    settings = PipelineSettings(
        blocking=BlockingSettings(cache_dir=ws["root"] / "emb"),
        stage_cache_dir=ws["root"] / cache,
        runner=RunnerSettings(pair_chunk_size=2_000, **runner),
    )
    return DedupParams(catalog=ws["catalog"], out=ws["root"] / out, model=ws["model"], settings=settings)


def run(p: DedupParams) -> dict:
    from flows.dedup import run_dedup

    return run_dedup(p)


def test_bad_parameters_fail_before_any_work(workspace, tmp_path):
    with pytest.raises(ValueError, match="file not found"):
        DedupParams(catalog=tmp_path / "missing.csv", out=tmp_path / "out", model=workspace["model"])
    with pytest.raises(ValueError, match="not a model folder"):
        DedupParams(catalog=workspace["catalog"], out=tmp_path / "out", model=tmp_path)
    with pytest.raises(ValueError, match="dask_address"):
        RunnerSettings(kind="threads", dask_address="tcp://127.0.0.1:8786")
    bad_settings = tmp_path / "settings.json"
    bad_settings.write_text(json.dumps({"blocking": {"k": 0}}))
    for args in (["dedup", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out")],
                 ["dedup", str(workspace["catalog"]), "--out", str(tmp_path / "out"), "--settings", str(bad_settings)]):
        proc = subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")
        assert not (tmp_path / "out").exists()


def test_bad_catalog_or_mismatched_model_fails_before_the_flow_starts(workspace, tmp_path):
    bad = tmp_path / "dup.csv"
    bad.write_text("id,title\n1,Red mug\n1,Blue mug\n")
    proc = subprocess.run([sys.executable, "-m", "flows", "dedup", str(bad), "--out", str(tmp_path / "out"),
                           "--model", str(workspace["model"])], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}, row 2, column 'id': duplicate id '1' (first at row 1)"]
    assert not (tmp_path / "out").exists()
    from flows.dedup import preflight

    static = params(workspace, "never").model_copy(update={"settings": PipelineSettings(
        blocking=BlockingSettings(backend="static", cache_dir=workspace["root"] / "emb"))})
    with pytest.raises(CatalogError, match="trained with embeddings torch/.* but this run uses static/"):
        preflight(static)


def test_training_errors_name_the_catalog(workspace, tmp_path):
    catalog = pl.read_csv(workspace["catalog"], infer_schema_length=0)
    unrelated = write_table(catalog.unique("family_id", keep="first", maintain_order=True).head(2), tmp_path / "two.csv")
    blocking = BlockingSettings(cache_dir=workspace["root"] / "emb")
    with pytest.raises(CatalogError, match=f"^{unrelated}: blocking found no true pair"):
        train_from_files(unrelated, tmp_path / "model", MatcherSettings(), blocking)
    untruthful = write_table(catalog.drop("product_id", "family_id"), tmp_path / "no-truth.csv")
    with pytest.raises(CatalogError, match=f"^{untruthful}, column 'product_id': training needs truth"):
        train_from_files(untruthful, tmp_path / "model", MatcherSettings(), blocking)
    assert not (tmp_path / "model").exists()


def test_dedup_flow_writes_run_folder_and_artifacts(harness, workspace):
    from prefect import get_client
    p = params(workspace, "run-a")
    info = run(p)
    out = p.out
    for name in ("pairs", "records", "groups", "lineage", "features"):
        assert (out / f"{name}.parquet").is_file()
    records = pl.read_parquet(out / "records.parquet")
    catalog = pl.read_csv(workspace["catalog"], infer_schema=False)
    assert sorted(records["id"].to_list()) == sorted(catalog["id"].to_list())
    # Every duplicate group lies inside exactly one family.
    assert records.group_by("duplicate_group_id").agg(pl.col("variant_family_id").n_unique())["variant_family_id"].max() == 1
    saved = json.loads((out / "run.json").read_text())
    assert DedupParams.model_validate(saved["params"]) == p
    assert saved["counts"]["records"] == catalog.height and info["counts"] == saved["counts"]
    assert set(saved["timings"]) >= {"load", "embed", "block", "features", "score", "expand", "cluster", "write"}
    # The two-hop round scores true pairs blocking missed, and only pairs blocking did not propose.
    metrics = saved["metrics"]
    assert 0 < metrics["blocking_pair_completeness"] < metrics["pair_completeness"] <= 1
    pairs = pl.read_parquet(out / "pairs.parquet")
    hop = pairs.filter(pl.col("blockers").list.contains("two_hop"))
    assert hop.height > 0 and hop["blockers"].list.len().max() == 1
    assert pairs.select("left_id", "right_id").is_unique().all()
    features = pl.read_parquet(out / "features.parquet")
    assert features.height == pl.read_parquet(out / "pairs.parquet").height

    async def artifact_keys() -> set[str]:
        # The 3.8 client serialises empty filters as nulls, which its own server rejects.
        async with get_client() as client:
            response = await client._client.post("/artifacts/filter", json={"limit": 200})
            return {a["key"] for a in response.json()}

    import asyncio

    assert asyncio.run(artifact_keys()) >= {"dedup-counts", "dedup-metrics", "dedup-run-folder"}


def test_failed_scoring_resumes_without_reembedding(harness, workspace, monkeypatch):
    p = params(workspace, "run-resume", cache="stages-resume")
    real = pipeline.score_features
    calls = {"n": 0}

    def failing(path, model_dir, bests):
        calls["n"] += 1
        raise RuntimeError("injected scoring failure")

    monkeypatch.setattr(pipeline, "score_features", failing)
    with pytest.raises(RuntimeError, match="injected"):
        run(p)
    assert calls["n"] >= 1 and not p.out.exists()
    monkeypatch.setattr(pipeline, "score_features", real)
    embedder = load_embedder(p.settings.blocking)
    before = embedder.encoded
    info = run(p)
    assert embedder.encoded == before  # every text came from the embedding cache
    assert info["cache_hits"]["candidates"] == 1 and info["cache_hits"]["features"] >= 1


def test_stage_results_of_other_code_are_not_reused(harness, workspace, monkeypatch):
    from flows import stage_cache

    run(params(workspace, "run-rev-1", cache="stages-rev"))
    hits = run(params(workspace, "run-rev-2", cache="stages-rev"))["cache_hits"]
    assert hits.get("candidates") == 1 and hits.get("features", 0) >= 1
    monkeypatch.setattr(stage_cache, "code_revision", lambda: "other code")
    assert run(params(workspace, "run-rev-3", cache="stages-rev"))["cache_hits"] == {}
    # A week on, no run has used either revision's results: the next run deletes them first.
    old = workspace["root"] / "stages-rev"
    results = list(old.rglob("*.parquet"))
    for path in results:
        os.utime(path, (path.stat().st_mtime - 8 * 86_400,) * 2)
    info = run(params(workspace, "run-rev-4", cache="stages-rev"))
    assert info["cache_pruned"] == len(results) and info["cache_hits"] == {}


def test_rerun_with_previous_keeps_every_id(harness, workspace):
    first = params(workspace, "run-ids-1")
    run(first)
    second = params(workspace, "run-ids-2").model_copy(update={"previous": first.out})
    run(second)
    a = pl.read_parquet(first.out / "records.parquet").sort("id")
    b = pl.read_parquet(second.out / "records.parquet").sort("id")
    assert a["duplicate_group_id"].to_list() == b["duplicate_group_id"].to_list()
    assert a["variant_family_id"].to_list() == b["variant_family_id"].to_list()
    events = set(pl.read_parquet(second.out / "lineage.parquet")["event"].to_list())
    assert events <= {"kept"}


def test_one_and_two_listing_catalogs_run_end_to_end(harness, workspace):
    """An analyst's tiny extract: no candidate pairs at all, then one pair, the first run as previous."""
    catalog = pl.read_csv(workspace["catalog"], infer_schema_length=0)
    one, two = (write_table(catalog.head(n), workspace["root"] / f"tiny-{n}.csv") for n in (1, 2))
    first = params(workspace, "tiny-run-1").model_copy(update={"catalog": one})
    info = run(first)
    assert info["counts"]["records"] == 1 and info["counts"]["candidates"] == 0
    records = pl.read_parquet(first.out / "records.parquet")
    assert records["id"].to_list() == catalog["id"].head(1).to_list()
    second = params(workspace, "tiny-run-2").model_copy(update={"catalog": two, "previous": first.out})
    run(second)
    kept = pl.read_parquet(second.out / "records.parquet").join(records, on="id", suffix="_before")
    assert kept["duplicate_group_id"].to_list() == kept["duplicate_group_id_before"].to_list()


def test_a_link_run_pairs_the_two_sources_in_id_order(harness, workspace):
    """Two sources whose ids overlap as strings: every pair joins one of each, sorted by the ids."""
    catalog = pl.read_csv(workspace["catalog"], infer_schema_length=0)
    # The right source's listings take the left source's ids.
    sources = (catalog.slice(0, 250), catalog.slice(250, 250).with_columns(catalog["id"].head(250)))
    left, right = (write_table(frame, workspace["root"] / f"source-{i}.csv") for i, frame in enumerate(sources))
    p = params(workspace, "link-run").model_copy(update={"catalog": left, "right": right})
    info = run(p)
    pairs = pl.read_parquet(p.out / "pairs.parquet")
    assert info["counts"]["records"] == 500 and pairs.height > 0
    assert pairs["left_id"].str.starts_with("left:").all() and pairs["right_id"].str.starts_with("right:").all()
    assert pairs.equals(pairs.sort(["left_id", "right_id"]))


def test_each_two_hop_round_scores_the_pairs_the_round_before_it_left(harness, workspace):
    one = params(workspace, "run-hop-1")
    one.settings.expand = ExpandSettings(rounds=1)
    two = params(workspace, "run-hop-2")
    two.settings.expand = ExpandSettings(rounds=2)
    run(one)
    run(two)
    first = pl.read_parquet(one.out / "pairs.parquet")
    second = pl.read_parquet(two.out / "pairs.parquet")
    keys = ["left_id", "right_id"]
    added = second.join(first.select(keys), on=keys, how="anti")
    expected = two_hop_pairs(first, two.settings.expand)
    assert expected.height > 0
    assert added.select(keys).sort(keys).equals(expected.select(keys).sort(keys))
    assert added["blockers"].to_list() == [[TWO_HOP]] * added.height
    # The first round's pairs keep their scores: the second round only adds.
    assert second.join(first.select(keys), on=keys, how="semi").sort(keys).equals(first.sort(keys))


def test_killed_write_leaves_previous_run_readable(harness, workspace, monkeypatch):
    p = params(workspace, "run-atomic")
    run(p)
    before = pl.read_parquet(p.out / "records.parquet")

    def dying_write(*args, **kwargs):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(pipeline, "write_json", dying_write)
    with pytest.raises(RuntimeError, match="killed"):
        run(p)
    assert pl.read_parquet(p.out / "records.parquet").equals(before)
    assert not [x for x in p.out.parent.iterdir() if x.name.startswith(f".{p.out.name}.")]


def test_threads_and_dask_runners_give_identical_outputs(harness, workspace):
    threads = params(workspace, "run-threads", cache="stages-threads")
    dask = params(workspace, "run-dask", cache="stages-dask", kind="dask", workers=2)
    run(threads)
    run(dask)
    for name, key in (("pairs", ["left_id", "right_id"]), ("records", ["id"]), ("groups", ["duplicate_group_id"])):
        a = pl.read_parquet(threads.out / f"{name}.parquet").sort(key)
        b = pl.read_parquet(dask.out / f"{name}.parquet").sort(key)
        assert a.equals(b), name


def test_a_part_gets_the_bests_of_its_own_records(tmp_path):
    part = write_table(pl.DataFrame({"left_id": ["a", "c"], "right_id": ["b", "a"]}), tmp_path / "part.parquet")
    best = pl.DataFrame({"id": ["a", "b", "c", "d"], "emb_cosine": [0.9, 0.8, 0.7, 0.6]})
    one = pipeline.part_bests(part, {"left": best, "right": best})
    assert one["left"] is one["right"] and sorted(one["left"]["id"]) == ["a", "b", "c"]
    other = best.with_columns(pl.col("emb_cosine") / 2)
    two = pipeline.part_bests(part, {"left": best, "right": other})
    assert sorted(two["left"]["id"]) == ["a", "c"] and sorted(two["right"]["id"]) == ["a", "b"]
    assert two["right"].filter(pl.col("id") == "a")["emb_cosine"].item() == 0.45


def test_serve_registers_cron_deployment_and_runs(harness, workspace, tmp_path):
    from prefect.settings import PREFECT_API_URL

    config = tmp_path / "serve.json"
    config.write_text(json.dumps({
        "name": "nightly-test", "catalog": str(workspace["catalog"]), "output_root": str(tmp_path / "runs"),
        "model": str(workspace["model"]), "cron": "0 3 * * *",
        "settings": {"blocking": {"cache_dir": str(workspace["root"] / "emb")},
                     "stage_cache_dir": str(workspace["root"] / "stages")},
    }))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.Popen([sys.executable, "-m", "flows", "serve", str(config), "--run-now"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import time

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list((tmp_path / "runs").glob("*/run.json")):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(2)
        runs = list((tmp_path / "runs").glob("*/run.json"))
        assert runs, "the triggered deployment run wrote no run folder"
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    import asyncio

    from prefect import get_client

    async def deployment():
        async with get_client() as client:
            return await client.read_deployment_by_name("scheduled-dedup/nightly-test")

    dep = asyncio.run(deployment())
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]


def test_train_flow_saves_a_loadable_model_and_leaves_metrics(harness, workspace, tmp_path):
    from flows.train_flow import TrainParams, run_train
    from matching.model import Matcher

    params = TrainParams(catalog=workspace["catalog"], out=tmp_path / "model", seed=3,
                         blocking=BlockingSettings(cache_dir=workspace["root"] / "emb"))
    summary = run_train(params)
    matcher = Matcher.load(tmp_path / "model")
    assert matcher.meta["seed"] == 3 and summary["validation"]["macro_f1"] > 0.5
    with pytest.raises(ValueError, match="file not found"):
        TrainParams(catalog=tmp_path / "nope.csv", out=tmp_path / "m")
