"""The `dedup` Prefect flow: load -> attributes -> embed -> block -> features+score -> cluster -> write."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from blocking.candidates import generate_candidates
from blocking.embed import embed_records, load_embedder
from features.attributes import extract_attributes
from features.idf import TokenIdf
from features.io import file_hash, frame_hash, write_json
from features.joins import PAIR_KEYS, sort_pairs
from features.pairs import FEATURE_NAMES, RANKED, RecordValues, apply_gaps, record_bests
from features.records import CatalogError, load_catalog
from flows import incremental, pipeline
from flows.incremental import ROW, Blocked, Carried, Delta, Previous
from flows.pipeline import RunResult, Side
from flows.probe import StageProbe
from flows.settings import DedupParams, RunnerSettings, ServeSettings
from flows.stage_cache import StageCache, code_revision, content_key
from matching.cluster import cluster_records
from matching.expand import round_pairs
from matching.lineage import assign_stable_ids
from matching.registry import Registry

# Our own content-hash cache (flows/stage_cache.py) replaces Prefect's input hashing, which would
# hash whole DataFrames by object and pickle results.
heavy = dict(cache_policy=NO_CACHE, persist_result=False)


def _io_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures another try can fix (I/O), never invalid input."""
    try:
        state.result()
    except CatalogError:
        return False
    except OSError:
        return True
    except Exception:  # anything else is a bug or bad data: retrying repeats it
        return False
    return False


file_io = dict(retries=3, retry_delay_seconds=[1, 4, 16], retry_condition_fn=_io_failure, **heavy)


@task(name="load", **file_io)
def load_task(path: Path) -> pl.DataFrame:
    """Read and validate one catalog."""
    return load_catalog(path)


@task(name="attributes", **heavy)
def attributes_task(records: pl.DataFrame, brands: list[str] | None = None, previous: Previous | None = None,
                    delta: Delta | None = None) -> pl.DataFrame:
    """Extract colours, sizes, model numbers and capacities; with ``previous``, only of new and changed records."""
    if previous is None:
        return extract_attributes(records, brands)
    return incremental.record_attributes(records, brands, previous, delta)


@task(name="embed-shard", **heavy)
def embed_shard_task(attrs: pl.DataFrame, settings: Any) -> np.ndarray:
    """Embed one shard of records through the on-disk cache."""
    return embed_records(attrs, settings)


@task(name="block", **heavy)
def block_task(left: Side, right: Side | None, settings: Any, cache: StageCache, key: str) -> pl.DataFrame:
    """Candidate pairs of two sources from FAISS neighbours and fuzzy keys, cached by content hash."""
    def compute() -> pl.DataFrame:
        pairs, report = generate_candidates(left.attrs, left.emb, settings, right=right.attrs, right_emb=right.emb)
        get_run_logger().info("blocking: %s", report.model_dump_json())
        return pairs
    return cache.frame("candidates", key, compute)


@task(name="block-catalog", **heavy)
def block_catalog_task(left: Side, settings: Any, previous: Previous | None, delta: Delta, reuse: bool,
                       exact: bool, cache: StageCache, key: str) -> Blocked:
    """Candidate pairs of one catalog; neighbours searched again only where they can have changed when
    reusing a previous run, else computed whole and cached by content hash."""
    if reuse:
        return incremental.block_catalog(left.attrs, left.emb, settings, previous, delta, reuse=True, exact=exact)
    computed: list[Blocked] = []

    def blocked() -> Blocked:
        if not computed:
            computed.append(incremental.block_catalog(left.attrs, left.emb, settings, previous, delta, reuse=False))
        return computed[0]

    candidates = cache.frame("candidates", key, lambda: blocked().candidates)
    ann = cache.frame("ann", key, lambda: blocked().ann)
    fresh = computed[0] if computed else None
    return Blocked(candidates, ann, fresh.index if fresh else None, fresh.report if fresh else {"cached": True})


@task(name="features-chunk", **heavy)
def features_task(pairs: pl.DataFrame, values: RecordValues | None, cache: StageCache, key: str) -> Path:
    """The cached Parquet file of one chunk's pair features, keyed by content hash (``values`` None: the
    chunk is in the cache)."""
    # The run reads the cached file itself: a copy of it in the run's parts took ~1.3 s per 500,000 pairs.
    return cache.file("features", key, lambda: pipeline.chunk_features(pairs, values, FEATURE_NAMES))


@task(name="score-chunk", **heavy)
def score_task(path: Path, model_dir: Path, bests: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Class probabilities and decisions for one chunk of pair features, its gaps taken against ``bests``."""
    return pipeline.score_features(path, model_dir, bests)


def task_runner(runner: RunnerSettings):
    """Threads by default; a Dask cluster (given address or a local one) on request."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if runner.dask_address:
            return DaskTaskRunner(address=runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": runner.workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=runner.workers)


def _embed(attrs: pl.DataFrame, params: DedupParams, probe: StageProbe) -> np.ndarray:
    shards = pipeline.shard_bounds(attrs.height, params.settings.runner.embed_shard_size)
    with probe.stage("embed"):
        futures = [embed_shard_task.submit(attrs.slice(a, b - a), params.settings.blocking) for a, b in shards]
        return np.vstack([f.result() for f in futures])


def _map_in_order(futures: list, progress_id: Any, done_before: int, total: int) -> list:
    results = []
    for i, fut in enumerate(futures, start=done_before + 1):
        results.append(fut.result())
        update_progress_artifact(progress_id, progress=100.0 * i / total)
    return results


@dataclass
class _Rounds:
    """Features and scores of a round of pairs: chunks in tasks, earlier runs' work reused where it cannot
    have changed. The first round is blocking's candidates; the second the two-hop pairs."""

    left: Side
    other: Side
    idf: TokenIdf
    cache: StageCache
    feature_key: list[Any]
    previous: Previous | None  # None: reuse nothing
    delta: Delta
    parts_dir: Path
    model: Path
    chunk_size: int
    one_catalog: bool
    probe: StageProbe
    remote: bool  # tasks run in other processes (Dask), which are sent only their chunk's records
    carried: Carried | None = field(init=False)
    parts: list[Path] = field(init=False, default_factory=list)  # every round's computed or rescored features
    # Per-record best RANKED scores over the first round's pairs, which every round's gaps are taken against.
    bests: dict[str, pl.DataFrame] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.carried = Carried() if self.previous is not None else None

    def run(self, pairs: pl.DataFrame, name: str) -> tuple[pl.DataFrame, int]:
        """Scored pairs (in no set order) and how many kept their previous scores. Parts are kept without
        their gaps, which are applied where the parts are read (scoring, the features file)."""
        progress = create_progress_artifact(progress=0.0, description=f"features and scoring of {name} pairs")
        with self.probe.stage("features"):
            reused = None
            if self.previous is not None:
                mask, reused = incremental.reusable_rows(pairs, self.previous, self.delta)
                pairs = pairs.filter(~pl.Series(mask))
            bounds = pipeline.shard_bounds(pairs.height, self.chunk_size)
            chunks = [pairs.slice(a, b - a) for a, b in bounds]
            keys = [content_key("features", *self.feature_key, frame_hash(chunk)) for chunk in chunks]
            cached = [self.cache.has("features", key) for key in keys]
            missing = [chunk for chunk, hit in zip(chunks, cached) if not hit]
            values = pipeline.round_values(pl.concat(missing), self.left, self.other, self.idf) if missing else None
            # A task in another process (Dask) is sent its chunk's records only, not the round's.
            parts = _map_in_order([
                features_task.submit(chunk, None if hit else values.only(chunk) if self.remote else values,
                                     self.cache, key)
                for chunk, key, hit in zip(chunks, keys, cached)
            ], progress, 0, 2 * len(bounds))
            del values  # every record of the round's, not needed while scoring
            ranked = [pl.scan_parquet(parts).select(*PAIR_KEYS, *RANKED)]
            if reused is not None:
                columns = incremental.carried_columns(self.previous, reused[ROW])
                ranked.append(columns.lazy().select(*PAIR_KEYS, *RANKED))
            if self.bests is None:
                self.bests = record_bests(pl.concat(ranked), self.one_catalog)
            if reused is not None:
                moved = incremental.moved_rows(columns, self.bests, self.previous)
                parts += incremental.rescore_parts(self.previous, moved, self.parts_dir / f"{name}-rescore",
                                                   self.chunk_size)
                reused = reused.filter(~pl.col(ROW).is_in(moved.implode()))
                del columns  # ~1.5 GB at a million listings, not needed while scoring
        self.parts += parts
        with self.probe.stage("score"):
            # A task in another process is sent its part's records' bests only.
            scored_parts = _map_in_order([score_task.submit(p, self.model, pipeline.part_bests(p, self.bests)
                                                            if self.remote else self.bests) for p in parts],
                                         progress, len(bounds), len(bounds) + len(parts))
            if reused is not None:
                self.carried.rows.append(reused[ROW])
                self.carried.fresh.extend(part.select(PAIR_KEYS) for part in scored_parts)
                scored_parts.append(incremental.reused_scores(self.previous, reused.select(PAIR_KEYS)))
        return pl.concat(scored_parts, how="vertical"), 0 if reused is None else reused.height

    def features(self) -> list[pl.LazyFrame]:
        """Every round's pair features computed or rescored here, lazily, their gaps applied."""
        return [apply_gaps(pl.scan_parquet(self.parts), self.bests)] if self.parts else []

    def carried_rows(self) -> tuple[Path, pl.Series] | None:
        """The previous run folder and the numbers of its feature rows carried over, if any were."""
        if self.carried is None or not self.carried.rows:
            return None
        return self.previous.folder, pl.concat(self.carried.rows)


@flow(name="dedup", log_prints=True, validate_parameters=True)
def dedup_flow(params: DedupParams) -> dict[str, Any]:
    """Find duplicate groups and variant families in one catalog (or across two with `right`)."""
    logger = get_run_logger()
    probe = StageProbe()
    settings = params.settings
    cache = StageCache(settings.stage_cache_dir)
    pruned = cache.prune(settings.stage_cache_max_age_days) if settings.stage_cache_max_age_days else 0
    with probe.stage("load"):
        left_records = load_task(params.catalog)
        right_records = load_task(params.right) if params.right else None
    one_catalog = right_records is None
    # Incremental state covers one catalog; a link run always computes everything.
    previous = incremental.load_previous(params.previous) if one_catalog else None
    hashes = incremental.content_hashes(left_records)
    delta = incremental.diff_records(hashes, previous)
    # Other code, another model or blocking/cluster setting makes every earlier score stale.
    fingerprint = incremental.reuse_fingerprint(settings.blocking.model_dump(mode="json"),
                                                settings.cluster.model_dump(mode="json"),
                                                settings.expand.model_dump(mode="json"), file_hash(params.model / "model.txt"))
    reuse = settings.incremental and previous is not None and previous.fingerprint == fingerprint
    with probe.stage("attributes"):
        brands, brands_refit = (incremental.choose_brands(left_records, previous, delta, settings.idf_refit_fraction)
                                if one_catalog else (None, True))
        # Refitted colour brands can change any record's attributes, so no record's work is reused.
        reuse_records = reuse and not brands_refit
        left_attrs = attributes_task(left_records, brands, previous if reuse_records else None, delta)
        right_attrs = attributes_task(right_records) if right_records is not None else None
    left = Side(left_attrs, _embed(left_attrs, params, probe))
    right = Side(right_attrs, _embed(right_attrs, params, probe)) if right_attrs is not None else None
    with probe.stage("features"):
        titles = pl.concat([left_attrs["attr_title"], *([right_attrs["attr_title"]] if right else [])])
        idf, idf_refit = incremental.choose_idf(titles, previous, delta, settings.idf_refit_fraction)
    # Attributes depend on the colour brands too, which may be an earlier run's.
    data_key = [frame_hash(left_records), frame_hash(right_records) if right_records is not None else None,
                settings.blocking.model_dump(mode="json"), brands]
    blocked = None
    with probe.stage("block"):
        if one_catalog:
            requery = settings.neighbour_requery or (
                "exact" if left_attrs.height <= settings.blocking.exact_max_records else "touched")
            blocked = block_catalog_task(left, settings.blocking, previous, delta, reuse_records, requery == "exact",
                                         cache, content_key("block", *data_key))
            pairs = blocked.candidates
        else:
            pairs = block_task(left, right, settings.blocking, cache, content_key("block", *data_key))
    other = right or left
    with tempfile.TemporaryDirectory(prefix="catalog-match-features-") as parts_dir:
        # A refitted IDF changes every pair's features: none are reused.
        feature_key = [*data_key, idf.to_json()]
        rounds = _Rounds(left, other, idf, cache, feature_key,
                         previous if reuse_records and not idf_refit else None, delta, Path(parts_dir), params.model,
                         settings.runner.pair_chunk_size, one_catalog, probe, settings.runner.kind == "dask")
        scored, reused_count = rounds.run(pairs, "candidate")
        for hop in range(settings.expand.rounds if one_catalog and settings.expand.enabled else 0):
            with probe.stage("expand"):
                extra = round_pairs(scored, left_attrs, settings.expand, rescue=hop == 0)
            if extra.is_empty():
                break
            extra_scored, extra_reused = rounds.run(extra, f"expansion-{hop + 1}")
            scored = pl.concat([scored, extra_scored], how="vertical_relaxed")
            reused_count += extra_reused
        with probe.stage("cluster"):
            # Sorted once, after the last round: clustering and the written pairs see one order in every run.
            ids = left_attrs["id"] if right_attrs is None else pl.concat([left_attrs["id"], right_attrs["id"]])
            scored = sort_pairs(scored, ids)
            result, reclustered = _cluster(left_attrs, right_attrs, scored, params, previous, delta, reuse_records,
                                           rounds.carried)
            result.idf = idf
            if one_catalog:
                result.brands, result.attributes = brands, left_attrs
                result.records = result.records.join(hashes, on="id", how="left")
                result.ann, result.index, result.bests = blocked.ann, blocked.index, rounds.bests["left"]
        n_records = left_attrs.height + (right_attrs.height if right_attrs is not None else 0)
        result.counts = pipeline.count_summary(n_records, result)
        truth_attrs = left_attrs if right_attrs is None else pipeline.link_records(left_attrs, right_attrs)
        result.metrics = pipeline.truth_metrics(truth_attrs, pairs, result.scored, result.records)
        run_info = {
            "inputs": {"catalog": pipeline.input_info(params.catalog),
                       **({"right": pipeline.input_info(params.right)} if params.right else {})},
            "previous": str(params.previous) if params.previous else None,
            "model": pipeline.model_info(params.model),
            "params": params.model_dump(mode="json"),
            "counts": result.counts,
            "metrics": result.metrics,
            "cache_hits": cache.hits,
            "cache_pruned": pruned,
            "code_revision": code_revision(),
            "reuse_fingerprint": fingerprint,
            "incremental": {
                "reuse": reuse, "records": delta.counts, "changed_fraction": round(delta.fraction, 6),
                "idf_refit": idf_refit, "colour_brands_refit": brands_refit,
                "blocking": blocked.report if blocked is not None else None,
                "pairs_reused": reused_count, "pairs_scored": scored.height - reused_count,
                "records_reclustered": reclustered,
            },
            "created_at": pipeline.utc_stamp(),
        }
        with probe.stage("write"):
            pipeline.write_run(params.out, result, run_info, rounds.features(), params.csv, rounds.carried_rows())
    # Timings are final only after the write; run.json is rewritten atomically with them.
    run_info["timings"] = {k: round(v, 3) for k, v in probe.seconds.items()}
    run_info["seconds_total"] = round(probe.total_seconds, 3)
    run_info["peak_rss_mb"] = round(probe.peak_mb, 1)
    run_info["peak_rss_mb_per_stage"] = {k: round(v, 1) for k, v in probe.peak_rss_mb.items()}
    write_json(run_info, params.out / "run.json")
    _artifacts(params, run_info)
    logger.info("run folder: %s", params.out)
    return run_info


def preflight(params: DedupParams) -> None:
    """Fail before a flow run starts: the catalogs must load, and the model must fit this run's
    features and embedder (its cosine features mean nothing under another embedding model)."""
    for path in (params.catalog, params.right):
        if path is not None:
            load_catalog(path)
    matcher = pipeline.load_matcher(str(params.model))
    trained_with = matcher.meta.get("embedding_model")
    running = load_embedder(params.settings.blocking).model_id
    if trained_with and trained_with != running:
        raise CatalogError(params.model, f"model was trained with embeddings {trained_with} but this run uses "
                                         f"{running}: set blocking.backend to match, or retrain the model")


def run_dedup(params: DedupParams) -> dict[str, Any]:
    """Check the inputs, then run the dedup flow with the task runner its settings choose."""
    preflight(params)
    return dedup_flow.with_options(task_runner=task_runner(params.settings.runner))(params)


def latest_run(output_root: Path) -> Path | None:
    """The newest finished run folder under ``output_root`` (names sort by UTC time)."""
    if not output_root.is_dir():
        return None
    runs = sorted(p for p in output_root.iterdir() if p.is_dir() and (p / "run.json").is_file()
                  and not p.name.startswith("."))
    return runs[-1] if runs else None


def scheduled_params(config: ServeSettings) -> DedupParams:
    """The parameters of the next scheduled run: a new dated run folder, the latest earlier run as
    `previous`, and the registry's current model when the config names a registry."""
    model = Registry(config.registry).model_dir("current") if config.registry is not None else config.model
    return DedupParams(
        catalog=config.catalog, out=config.output_root / pipeline.utc_stamp(), model=model,
        previous=latest_run(config.output_root), csv=config.csv, settings=config.settings,
    )


@flow(name="scheduled-dedup", log_prints=True, validate_parameters=True)
def scheduled_dedup_flow(config: ServeSettings) -> dict[str, Any]:
    """One scheduled run (see ``scheduled_params``)."""
    return run_dedup(scheduled_params(config))


def _cluster(left_attrs: pl.DataFrame, right_attrs: pl.DataFrame | None, scored: pl.DataFrame,
             params: DedupParams, previous: Previous | None, delta: Delta, reuse: bool,
             carried: Carried | None) -> tuple[RunResult, int]:
    """Clusters with stable ids; with reuse, only the components a change touched are clustered again
    (``carried``: the pairs whose scores were taken over, None if none were)."""
    if right_attrs is not None:
        attrs = pipeline.link_records(left_attrs, right_attrs)
        scored = pipeline.namespace_link(scored, {"left_id": "left", "right_id": "right"})
    else:
        attrs = left_attrs
    if reuse:
        clusters, reclustered = incremental.recluster(attrs, scored, previous, delta, params.settings.cluster,
                                                      carried)
    else:
        clusters, reclustered = cluster_records(attrs, scored, params.settings.cluster), attrs.height
    prev_records = pl.read_parquet(params.previous / "records.parquet") if params.previous else None
    records, groups, lineage = assign_stable_ids(clusters, prev_records)
    return RunResult(scored=scored, records=pipeline.display_records(attrs, records), groups=groups,
                     lineage=lineage), reclustered


def _artifacts(params: DedupParams, info: dict[str, Any]) -> None:
    counts = info["counts"] | {f"seconds_{k}": v for k, v in info["timings"].items()}
    create_table_artifact([{"metric": k, "value": v} for k, v in counts.items()], key="dedup-counts",
                          description="Counts and runtime per stage")
    create_link_artifact(key="dedup-run-folder", link=params.out.resolve().as_uri(),
                         description="Run folder")
    if info["metrics"]:
        m = info["metrics"]
        lines = ["# Dedup metrics against truth", "",
                 f"- pair completeness: blocking {m['blocking_pair_completeness']}, scored {m['pair_completeness']}"]
        for cls in ("duplicate", "variant"):
            lines.append(f"- {cls}: P {m[cls]['precision']} R {m[cls]['recall']} F1 {m[cls]['f1']}")
        for level, s in m["clusters"].items():
            lines.append(f"- {level} B-cubed: P {s['bcubed_precision']} R {s['bcubed_recall']} F1 {s['bcubed_f1']}")
        create_markdown_artifact("\n".join(lines), key="dedup-metrics", description="Quality against truth")
