"""A model registry folder: numbered model versions, an atomically updated `current` pointer, and a
log of every promotion, including forced ones with their reason.

Layout::

    REGISTRY/v0001/            model folder (Matcher.save) plus entry.json and, when the model was
                               compared with its parent, comparison.json and flips.parquet
    REGISTRY/current           the promoted version's name
    REGISTRY/registry.json     {"promotions": [...]}, oldest first
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel

from features.io import atomic_dir, write_json, write_table, write_text
from features.records import CatalogError
from matching.flips import FlipReport, GateDecision, gate
from matching.model import Matcher
from matching.settings import GateSettings

CURRENT = "current"
_VERSION = re.compile(r"^v(\d{4,})$")


class ModelEntry(BaseModel):
    """What the registry knows about one model version."""

    model_config = {"protected_namespaces": ()}

    version: str
    created_at: str
    parent: str | None
    training_data_hash: str | None
    metrics: dict[str, Any]
    notes: dict[str, Any] = {}


class Promotion(BaseModel):
    """One attempt to make a version current, as logged in registry.json."""

    version: str
    previous: str | None
    at: str
    outcome: Literal["promoted", "forced", "refused"]
    reason: str | None = None
    gate: GateDecision | None = None
    comparison: FlipReport | None = None


class PromotionRefused(Exception):
    """The gate refused a promotion; the reasons are in ``decision``."""

    def __init__(self, version: str, decision: GateDecision):
        self.version, self.decision = version, decision
        super().__init__(f"promotion of {version} refused: " + "; ".join(decision.reasons))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """A registry folder of versioned models; create it with ``Registry(path, create=True)``."""

    def __init__(self, root: str | os.PathLike, create: bool = False):
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise CatalogError(self.root, "model registry folder not found")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers so two trainings never take the same version number."""
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def versions(self) -> list[str]:
        """All complete model versions, oldest first."""
        found = [p.name for p in self.root.iterdir() if _VERSION.match(p.name) and (p / "entry.json").is_file()]
        return sorted(found, key=lambda v: int(v[1:]))

    def current(self) -> str | None:
        """The promoted version, or None before the first promotion."""
        pointer = self.root / CURRENT
        return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None

    def resolve(self, ref: str) -> str:
        """Turn 'current', 'v0003' or '3' into a version name that exists."""
        if ref == CURRENT:
            version = self.current()
            if version is None:
                raise CatalogError(self.root, "no model has been promoted yet, so there is no 'current'")
            return version
        version = f"v{int(ref):04d}" if ref.isdigit() else ref
        if version not in self.versions():
            raise CatalogError(self.root, f"no model version {ref!r} (have: {', '.join(self.versions()) or 'none'})")
        return version

    def model_dir(self, ref: str) -> Path:
        """The folder of a version, which Matcher.load reads."""
        return self.root / self.resolve(ref)

    def entry(self, ref: str) -> ModelEntry:
        """The metadata of a version."""
        return ModelEntry.model_validate_json((self.model_dir(ref) / "entry.json").read_text(encoding="utf-8"))

    def add(
        self,
        model: Matcher,
        parent: str | None = None,
        training_data_hash: str | None = None,
        metrics: dict[str, Any] | None = None,
        notes: dict[str, Any] | None = None,
    ) -> ModelEntry:
        """Store a model as the next version (not promoted); hash and metrics default to its metadata."""
        with self._locked():
            taken = [int(m.group(1)) for p in self.root.iterdir() if (m := _VERSION.match(p.name))]
            version = f"v{max(taken, default=0) + 1:04d}"
            entry = ModelEntry(
                version=version,
                created_at=_now(),
                parent=self.resolve(parent) if parent else None,
                training_data_hash=training_data_hash or model.meta.get("training_data_sha256"),
                metrics=metrics if metrics is not None else model.meta.get("validation_metrics", {}),
                notes=notes or {},
            )
            # The version appears only once model and entry are both written.
            with atomic_dir(self.root / version) as tmp:
                model.save(tmp)
                write_text(entry.model_dump_json(indent=2) + "\n", tmp / "entry.json")
        return entry

    def save_comparison(self, ref: str, report: FlipReport, flips: pl.DataFrame) -> Path:
        """Keep a version's comparison with the old model next to it, for the promotion gate."""
        folder = self.model_dir(ref)
        write_table(flips, folder / "flips.parquet")
        return write_text(report.model_dump_json(indent=2) + "\n", folder / "comparison.json")

    def comparison(self, ref: str) -> tuple[FlipReport, pl.DataFrame] | None:
        """A version's stored comparison and flipped pairs, or None if it has none."""
        folder = self.model_dir(ref)
        if not (folder / "comparison.json").is_file():
            return None
        report = FlipReport.model_validate_json((folder / "comparison.json").read_text(encoding="utf-8"))
        return report, pl.read_parquet(folder / "flips.parquet")

    def history(self) -> list[Promotion]:
        """Every promotion attempt, oldest first."""
        log = self.root / "registry.json"
        if not log.is_file():
            return []
        return [Promotion.model_validate(p) for p in json.loads(log.read_text(encoding="utf-8"))["promotions"]]

    def _log(self, promotion: Promotion) -> None:
        entries = [p.model_dump(mode="json") for p in self.history()] + [promotion.model_dump(mode="json")]
        write_json({"promotions": entries}, self.root / "registry.json")

    def promote(
        self,
        ref: str,
        settings: GateSettings,
        report: FlipReport | None = None,
        force: bool = False,
        reason: str | None = None,
    ) -> Promotion:
        """Make a version current if the gate passes (or it is forced with a reason); log the attempt.

        ``report`` compares the current model (old) with this version (new); it is not needed for
        the first promotion. A refusal is logged and raised as PromotionRefused.
        """
        if force and not (reason and reason.strip()):
            raise CatalogError(self.root, "a forced promotion needs a reason")
        with self._locked():
            version, previous = self.resolve(ref), self.current()
            if version == previous:
                raise CatalogError(self.root, f"{version} is already current")
            decision = None
            if previous is not None:
                if report is None or (report.old_model, report.new_model) != (previous, version):
                    raise CatalogError(
                        self.root, f"no comparison of {version} with the current model {previous}: "
                    f"run `catalog-match compare current {version} ...` first"
                    )
                decision = gate(report, settings)
            passed = decision is None or decision.passed
            outcome = "promoted" if passed else "forced" if force else "refused"
            promotion = Promotion(
                version=version, previous=previous, at=_now(), outcome=outcome,
                reason=reason, gate=decision, comparison=report,
            )
            if outcome != "refused":
                # The pointer moves first: a failure here leaves the old pointer and no log entry.
                write_text(version + "\n", self.root / CURRENT)
            self._log(promotion)
        if outcome == "refused":
            raise PromotionRefused(version, decision)
        return promotion
