"""Scale benchmark: seeded catalogs of growing size through `dedup`, each in its own process, with
time and peak memory per stage next to quality against the generator's truth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from blocking.embed import load_embedder
from blocking.settings import BlockingSettings
from features.generate import generate_catalog
from features.io import write_json, write_table
from features.records import CatalogError
from flows.settings import DEFAULT_MODEL, PipelineSettings
from flows.stage_cache import content_key
from matching.compiled import compile_trees, compiled_dir
from matching.model import MODEL_FILE, Matcher
from matching.settings import MatcherSettings

# Stages in the order the issue reports them; `attributes` and `expand` (two-hop pairs) are reported too.
STAGES = ("load", "attributes", "embed", "index", "block", "features", "score", "expand", "cluster", "write")


def bench_catalog(n_records: int, seed: int, path: Path) -> Path:
    """Write a seeded synthetic catalog as Parquet, so loading measures the pipeline rather than CSV parsing."""
    return write_table(generate_catalog(n_records, seed, progress=True), path)


def mutate_catalog(catalog: pl.DataFrame, fraction: float, seed: int) -> pl.DataFrame:
    """A later version of ``catalog`` with ``fraction`` of its listings changed or new.

    Half are edits of existing listings (title reworded, price moved); half are new listings that
    re-list an existing product under a new id. Truth columns follow the product, so they stay true.
    """
    rng = np.random.default_rng(seed)
    n_touched = max(2, round(fraction * catalog.height))
    picks = rng.choice(catalog.height, size=n_touched, replace=False)
    edited, relisted = np.sort(picks[: n_touched // 2]), np.sort(picks[n_touched // 2:])
    marks = ("- new", "(2026)", "| free shipping", "- sale")
    edit = pl.Series("edit", np.isin(np.arange(catalog.height), edited))
    mark = pl.Series("mark", np.array(marks)[np.arange(catalog.height) % len(marks)])
    changed = catalog.with_columns(
        pl.when(edit).then(pl.concat_str([pl.col("title"), mark], separator=" "))
        .otherwise(pl.col("title")).alias("title"),
        pl.when(edit).then((pl.col("price") * 1.07).round(2)).otherwise(pl.col("price")).alias("price"),
    )
    copies = catalog[relisted]
    fresh = copies.with_columns(
        _new_ids(copies["id"], catalog["id"]),
        pl.concat_str([pl.col("title"), pl.lit("(relisted)")], separator=" ").alias("title"),
    )
    return pl.concat([changed, fresh])


def _new_ids(copied: pl.Series, taken: pl.Series) -> pl.Series:
    """``N`` + each copied id, with more ``N`` until it is in neither the catalog nor earlier in the list
    (a catalog mutated before holds ``N`` ids already: ``L1`` and ``NL1`` both copied would clash)."""
    ids, taken = "N" + copied, taken.implode()
    while (clash := ids.is_in(taken) | ~ids.is_first_distinct()).any():
        ids = ids.zip_with(~clash, "N" + ids)
    return ids.alias("id")


def scale_settings(work: Path, settings: PipelineSettings | None = None) -> PipelineSettings:
    """Write the benchmark's pipeline settings: by default the static embedder, the fast path that makes
    millions feasible."""
    settings = settings or PipelineSettings(blocking=BlockingSettings(backend="static"))
    write_json(settings.model_dump(mode="json"), work / "settings.json")
    return settings


# A model for large catalogs learns from more than the 3,000-listing sample: only a bigger catalog holds
# the many brands and near-identical lines of different brands that a million listings bring (trained on
# 100,000 rather than 30,000 listings, variant F1 on the 100,000-listing bench catalog rose from 0.864
# to 0.887), and the more of them the better the model holds up at a million: trained on 100,000
# listings, duplicate / variant F1 fell from 0.933 / 0.897 at 100,000 to 0.919 / 0.871 at 1,000,000;
# trained on 300,000 (~28 minutes), from 0.933 / 0.896 to 0.931 / 0.892. Fewer, larger boosting steps
# keep the tree count (and so scoring time per pair) near the shipped model's.
TRAIN_RECORDS = 300_000
TRAIN_SEED_OFFSET = 1000  # training catalogs never share a seed with the catalogs measured
SCALE_MATCHER = MatcherSettings(learning_rate=0.15, num_boost_round=400)
# Blocking settings that change where or how fast work is done, never what is found.
_NOT_IN_MODEL = {"cache", "cache_dir", "threads"}


def bench_model_dir(work: Path, blocking: BlockingSettings, train_records: int, train_seed: int) -> Path:
    """The folder of the model bench-scale trains, named by all it is trained from (training size, catalog
    seed, blocking and embedder settings, matcher settings), so a work folder's model is reused only by
    runs it fits."""
    key = content_key("bench-model", train_records, train_seed, blocking.model_dump(mode="json", exclude=_NOT_IN_MODEL),
                      SCALE_MATCHER.model_dump(mode="json"))
    return work / f"model-{train_records}-{key[:12]}"


def ensure_model(work: Path, blocking: BlockingSettings, seed: int = 0,
                 train_records: int = TRAIN_RECORDS) -> tuple[Path, str]:
    """The shipped model if it fits this version's features and embedder, else one trained here with
    ``blocking`` on a generated catalog of ``train_records`` listings (another seed than any measured
    catalog); and which it was."""
    if (DEFAULT_MODEL / "model.txt").is_file():
        try:
            shipped = Matcher.load(DEFAULT_MODEL)
            if shipped.meta.get("embedding_model") == load_embedder(blocking).model_id:
                return DEFAULT_MODEL, f"shipped ({DEFAULT_MODEL})"
        except CatalogError:
            pass  # trained on another feature list or revision: train one that fits
    train_seed = seed + TRAIN_SEED_OFFSET
    model = bench_model_dir(work, blocking, train_records, train_seed)
    try:
        Matcher.load(model)
    except CatalogError:  # none yet, or one trained on an earlier feature revision
        catalog = bench_catalog(train_records, train_seed, work / f"train-{train_records}.parquet")
        path = write_json(blocking.model_dump(mode="json"), work / "blocking.json")
        matcher = write_json(SCALE_MATCHER.model_dump(mode="json"), work / "matcher.json")
        _catalog_match(["train", str(catalog), "--out", str(model), "--blocking", str(path), "--matcher", str(matcher)],
                       work, "train")
    return model, (f"trained on {train_records} generated listings (seed {train_seed}) with the {blocking.backend} "
                   f"embedder and {SCALE_MATCHER.model_dump(exclude_defaults=True)} ({model})")


def _cache(work: Path) -> Path:
    """The cache root of the bench's runs (``CATALOG_MATCH_CACHE``): embeddings, stage results, compiled trees."""
    return work / "cache"


def _catalog_match(args: list[str], work: Path, log_name: str) -> None:
    """Run one catalog-match command in a fresh process; its output goes to ``work/<log_name>.log``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CATALOG_MATCH_CACHE": str(_cache(work))}
    if "PREFECT_API_URL" not in os.environ:
        # Each run then starts Prefect's ephemeral server: give it its own database, and time to start on a
        # busy machine.
        env.setdefault("PREFECT_HOME", str(work / "prefect"))
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    log = work / f"{log_name}.log"
    with log.open("w") as out:
        code = subprocess.run([sys.executable, "-m", "flows", *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    if code:
        raise RuntimeError(f"catalog-match {' '.join(args)} failed ({code}): {log.read_text()[-2000:]}")


def run_dedup(catalog: Path, out: Path, model: Path, work: Path, previous: Path | None = None) -> dict[str, Any]:
    """Run `catalog-match dedup` in a fresh process (peak memory of one run cannot leak into the next)."""
    args = ["dedup", str(catalog), "--out", str(out), "--model", str(model), "--settings", str(work / "settings.json")]
    if previous is not None:
        args += ["--previous", str(previous)]
    started = time.perf_counter()
    _catalog_match(args, work, out.name)
    info = json.loads((out / "run.json").read_text())
    info["process_seconds"] = round(time.perf_counter() - started, 3)
    return info


def stage_seconds(info: dict[str, Any]) -> dict[str, float]:
    """Seconds per reported stage: `index` (building or updating the FAISS index) is split out of `block`."""
    timings = dict(info["timings"])
    blocking = (info.get("incremental") or {}).get("blocking") or {}
    index = round(blocking.get("seconds", {}).get("index", 0.0), 3)
    timings["block"] = round(timings.get("block", 0.0) - index, 3)
    timings["index"] = index
    return {"total": info["seconds_total"], **{s: round(timings.get(s, 0.0), 3) for s in STAGES}}


def run_summary(info: dict[str, Any]) -> dict[str, Any]:
    """One entry of the benchmark's `runs` list."""
    metrics = info.get("metrics") or {}
    return {
        "records": info["counts"]["records"],
        "seconds": stage_seconds(info),
        "peak_rss_mb": info["peak_rss_mb"],
        "peak_rss_mb_per_stage": info.get("peak_rss_mb_per_stage"),
        "pair_completeness": metrics.get("pair_completeness"),
        "blocking_pair_completeness": metrics.get("blocking_pair_completeness"),
        "duplicate_f1": (metrics.get("duplicate") or {}).get("f1"),
        "variant_f1": (metrics.get("variant") or {}).get("f1"),
        "process_seconds": info["process_seconds"],
        "candidates": info["counts"]["candidates"],
    }


def bench_scale(sizes: list[int], work: Path, seed: int = 0, incremental_fraction: float | None = None,
                settings: PipelineSettings | None = None, json_path: Path | None = None,
                train_records: int = TRAIN_RECORDS) -> dict[str, Any]:
    """Generate, dedup and summarise each size; with a fraction, time an incremental run on the largest.

    With ``json_path`` the report is rewritten after every run, so a long benchmark leaves its figures so far.
    """
    work.mkdir(parents=True, exist_ok=True)
    # Embedding and stage caches start empty so that the first run of each size pays for everything.
    shutil.rmtree(_cache(work), ignore_errors=True)
    used = scale_settings(work, settings)
    model, model_source = ensure_model(work, used.blocking, seed, train_records)
    # Compiled once for the machine, as a scheduled run's model is, not inside the first size's run.
    started = time.perf_counter()
    compile_trees((model / MODEL_FILE).read_text(encoding="utf-8"), compiled_dir(_cache(work)))
    report: dict[str, Any] = {"runs": [], "incremental": None, "model": model_source, "seed": seed,
                              "model_compile_seconds": round(time.perf_counter() - started, 3),
                              "settings": used.model_dump(mode="json"),
                              "load_average": list(os.getloadavg()), "cpus": os.cpu_count()}
    runs: dict[int, tuple[Path, Path, dict[str, Any]]] = {}
    for n in sorted(sizes):
        catalog = bench_catalog(n, seed, work / f"catalog-{n}.parquet")
        out = work / f"run-{n}"
        info = run_dedup(catalog, out, model, work)
        runs[n] = (catalog, out, info)
        report["runs"].append(run_summary(info))
        _save(report, json_path)
    if incremental_fraction:
        n = max(sizes)
        catalog, out, info = runs[n]
        later = write_table(mutate_catalog(pl.read_parquet(catalog), incremental_fraction, seed + 1),
                            work / f"catalog-{n}-later.parquet")
        inc = run_dedup(later, work / f"run-{n}-incremental", model, work, previous=out)
        report["incremental"] = {
            "records": inc["counts"]["records"],
            "changed_fraction": inc["incremental"]["changed_fraction"],
            "seconds": inc["seconds_total"],
            "full_seconds": info["seconds_total"],
            "stages": stage_seconds(inc),
            "work": {k: inc["incremental"][k] for k in ("pairs_reused", "pairs_scored", "records_reclustered")}
            | {"ann_queries": (inc["incremental"]["blocking"] or {}).get("ann_queries")},
            "pair_completeness": (inc.get("metrics") or {}).get("pair_completeness"),
            "duplicate_f1": ((inc.get("metrics") or {}).get("duplicate") or {}).get("f1"),
            "variant_f1": ((inc.get("metrics") or {}).get("variant") or {}).get("f1"),
        }
    report["load_average_after"] = list(os.getloadavg())
    _save(report, json_path)
    return report


def _save(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        write_json(report, path)

