"""Run settings and validated flow parameters; a run folder records the exact settings it used."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from blocking.settings import BlockingSettings
from features.records import FORMATS
from features.settings import Settings
from matching.settings import ClusterSettings, ExpandSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "data" / "model"
SAMPLE_CATALOG = REPO_ROOT / "data" / "sample_catalog.csv"


class RunnerSettings(Settings):
    """Where the heavy stages run: local threads, or a Dask cluster."""

    kind: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None
    workers: int = Field(2, ge=1)
    pair_chunk_size: int = Field(500_000, ge=1_000)
    embed_shard_size: int = Field(100_000, ge=1_000)

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunnerSettings:
        if self.dask_address and self.kind != "dask":
            raise ValueError("dask_address is set but kind is not 'dask'")
        return self


class PipelineSettings(Settings):
    """Everything that shapes a dedup or link run apart from its inputs."""

    blocking: BlockingSettings = Field(default_factory=BlockingSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    expand: ExpandSettings = Field(default_factory=ExpandSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    stage_cache_dir: Path | None = None
    # A scheduled run meets a new catalog every day and a new code revision now and then: results that
    # no run has read or written for this many days are deleted when a run starts. None keeps them all.
    stage_cache_max_age_days: float | None = Field(7.0, gt=0)
    seed: int = 0
    # With a previous run: reuse its neighbours, features, scores and clusters where they cannot change.
    # Off, the run recomputes everything (the "full run" an incremental run must equal).
    incremental: bool = True
    # exact: also search again every unchanged record whose neighbour pool a changed vector can enter or
    # leave, so candidates equal a full run's; touched: search only records that changed or lost a
    # neighbour for good, and patch other lists with the new vectors that enter their pools (a pool
    # member beyond the k kept can be missed). None: exact for catalogs small enough for the exact
    # index (blocking.exact_max_records), touched above, where the updated IVF index makes a full
    # run's candidates unreproducible anyway and searching again cost 4x the patched run's searches.
    neighbour_requery: Literal["exact", "touched"] | None = None
    # Share of new, changed or deleted records above which the title IDF is refitted instead of reused.
    idf_refit_fraction: float = Field(0.1, ge=0, le=1)


def _catalog_path(value: Path | None, what: str) -> Path | None:
    if value is None:
        return None
    value = Path(value)
    if value.suffix.lower() not in FORMATS:
        raise ValueError(f"{what} {value}: unsupported format {value.suffix!r} (use .csv, .parquet or .jsonl)")
    if not value.is_file():
        raise ValueError(f"{what} {value}: file not found")
    return value


class DedupParams(Settings):
    """Parameters of one dedup (one catalog) or link (two sources) run, checked before any work."""

    catalog: Path
    right: Path | None = None
    out: Path
    model: Path = DEFAULT_MODEL
    previous: Path | None = None
    csv: bool = False
    settings: PipelineSettings = Field(default_factory=PipelineSettings)

    @field_validator("catalog")
    @classmethod
    def _catalog_exists(cls, v: Path) -> Path:
        return _catalog_path(v, "catalog")

    @field_validator("right")
    @classmethod
    def _right_exists(cls, v: Path | None) -> Path | None:
        return _catalog_path(v, "right catalog")

    @field_validator("model")
    @classmethod
    def _model_exists(cls, v: Path) -> Path:
        if not (Path(v) / "model.txt").is_file() or not (Path(v) / "metadata.json").is_file():
            raise ValueError(f"model {v}: not a model folder (needs model.txt and metadata.json)")
        return Path(v)

    @field_validator("previous")
    @classmethod
    def _previous_is_run(cls, v: Path | None) -> Path | None:
        if v is not None and not (Path(v) / "records.parquet").is_file():
            raise ValueError(f"previous {v}: not a run folder (records.parquet missing)")
        return v

    @model_validator(mode="after")
    def _out_is_not_input(self) -> DedupParams:
        if self.out.resolve() in {p.resolve() for p in (self.catalog, self.right) if p is not None}:
            raise ValueError(f"out {self.out}: would overwrite an input")
        return self


class ServeSettings(Settings):
    """A scheduled catalog run: what to read, where runs go, which model, and when."""

    name: str = "catalog-dedup"
    catalog: Path
    output_root: Path
    model: Path = DEFAULT_MODEL
    # Read at every run, so that promoting a version changes the next scheduled run without redeploying.
    registry: Path | None = Field(None, description="model registry folder; when set, each run uses its current version")
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    csv: bool = False
    settings: PipelineSettings = Field(default_factory=PipelineSettings)

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, v: str) -> str:
        from cronsim import CronSim, CronSimError
        from datetime import datetime

        try:
            CronSim(v, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"cron {v!r}: {exc}") from None
        return v
