"""The LightGBM pair matcher: training, validation-chosen thresholds, scoring and the model folder.

Decision rule. Binary: `match` when p(match) >= `match_threshold`, the F1-optimal threshold on the
validation pairs. Multiclass: a pair is a match when p(duplicate) + p(variant) >= `match_threshold`;
a match is a `duplicate` when p(duplicate) >= `variant_bias` * p(variant), else a `variant`. Both
numbers are chosen together on the validation pairs to maximise the macro F1 of duplicate and variant.

Soft targets. With `teacher_proba`, each row's target is (1 - teacher_weight) * one-hot label +
teacher_weight * teacher probabilities. LightGBM has no soft-label multiclass objective, so each row
is repeated once per class with weight = target share: the weighted hard-label cross-entropy of
the copies equals the soft-label cross-entropy of the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np
import polars as pl

from features.io import write_json, write_text
from features.pairs import FEATURE_NAMES, FEATURE_REVISION
from features.records import CatalogError
from matching.compiled import compiled_trees
from matching.labels import BINARY, MULTICLASS, to_binary
from matching.metrics import class_report
from matching.settings import MatcherSettings

MODEL_FILE = "model.txt"
META_FILE = "metadata.json"
_THRESHOLD_GRID = np.round(np.linspace(0.02, 0.98, 97), 4)
_BIAS_GRID = np.round(2.0 ** np.linspace(-3, 3, 25), 4)


def _matrix(features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise ValueError(f"feature frame lacks {len(missing)} model features: {', '.join(missing[:5])}")
    return features.select([pl.col(n).cast(pl.Float32) for n in names]).to_numpy().astype(np.float32)


def _encode(labels: Sequence[str] | np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    arr = np.asarray(labels, dtype=object)
    if classes == BINARY:
        arr = to_binary(arr)
    unknown = sorted(set(arr.tolist()) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of this matcher {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[a] for a in arr], dtype=np.int32)


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; a class with one example stays in training."""
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_valid = min(int(round(len(idx) * fraction)), len(idx) - 1)
        valid.append(idx[:n_valid])
        train.append(idx[n_valid:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def _group_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split that holds out whole groups, about `fraction` of the rows."""
    keys, inverse, counts = np.unique(np.asarray(groups).astype(str), return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(keys))
    held = order[: int(np.searchsorted(np.cumsum(counts[order]), fraction * len(groups)))]
    in_valid = np.isin(inverse, held)
    return np.flatnonzero(~in_valid), np.flatnonzero(in_valid)


def _class_weights(y: np.ndarray, n_classes: int, how: str) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    if how == "none":
        return np.ones(n_classes)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _soft_rows(x: np.ndarray, y: np.ndarray, weight: np.ndarray, teacher: np.ndarray | None,
               share: float, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand rows into one weighted copy per class whose weights follow the soft target."""
    if teacher is None:
        return x, y, weight
    target = (1 - share) * np.eye(n_classes)[y] + share * teacher
    rows, cls = np.nonzero(target > 1e-6)
    return x[rows], cls.astype(np.int32), weight[rows] * target[rows, cls]


def _params(settings: MatcherSettings, n_classes: int) -> dict:
    objective = {"objective": "binary"} if n_classes == 2 else {"objective": "multiclass", "num_class": n_classes}
    return {
        **objective,
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_data_in_leaf": settings.min_data_in_leaf,
        "feature_fraction": settings.feature_fraction,
        "lambda_l2": settings.lambda_l2,
        "seed": settings.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": settings.num_threads,
        "verbosity": -1,
    }


@dataclass
class Matcher:
    """A trained LightGBM booster with its feature list, classes, thresholds and metadata."""

    booster: lgb.Booster
    classes: tuple[str, ...]
    feature_names: list[str]
    thresholds: dict[str, float]
    meta: dict = field(default_factory=dict)
    model_text: str | None = field(default=None, repr=False)  # as loaded: what the compiled trees are made of

    def predict_proba(self, features: pl.DataFrame) -> np.ndarray:
        """Class probabilities over every tree, shape (n, n_classes), columns in `classes` order: from the
        compiled trees (``matching.compiled``) where they pay off, else from LightGBM."""
        x = _matrix(features, self.feature_names)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)))
        trees = compiled_trees(self.model_text, len(x)) if self.model_text is not None else None
        raw = self.booster.predict(x) if trees is None else trees.predict(x.astype(np.float64))
        if self.classes == BINARY:
            return np.column_stack([raw, 1.0 - raw])
        return raw

    def _margins(self, proba: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray | None]]:
        """Each decision as (score, threshold, where it applies): the inputs of decide and uncertainty."""
        if self.classes == BINARY:
            return [(proba[:, 0], self.thresholds["match_threshold"], None)]
        match = proba[:, 0] + proba[:, 1]
        bias = self.thresholds["variant_bias"]
        # p_dup >= bias * p_var  <=>  p_dup / (p_dup + bias * p_var) >= 0.5
        dup_share = proba[:, 0] / np.maximum(proba[:, 0] + bias * proba[:, 1], 1e-12)
        is_match = match >= self.thresholds["match_threshold"]
        return [(match, self.thresholds["match_threshold"], None), (dup_share, 0.5, is_match)]

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Apply the validation-chosen thresholds to probabilities; returns class names."""
        proba = np.asarray(proba, dtype=float)
        if self.classes == BINARY:
            return np.where(proba[:, 0] >= self.thresholds["match_threshold"], "match", "distinct").astype(object)
        (match, t, _), (dup_share, half, _) = self._margins(proba)
        out = np.where(dup_share >= half, "duplicate", "variant").astype(object)
        out[match < t] = "distinct"
        return out

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        """1 when a pair sits on a decision threshold, 0 when it is as far from all as it can be."""
        result = np.zeros(len(proba))
        for score, t, applies in self._margins(np.asarray(proba, dtype=float)):
            span = np.where(score < t, t, 1.0 - t)
            u = 1.0 - np.abs(score - t) / np.maximum(span, 1e-12)
            if applies is not None:
                u = np.where(applies, u, 0.0)
            result = np.maximum(result, np.clip(u, 0.0, 1.0))
        return result

    def contributions(self, features: pl.DataFrame) -> np.ndarray:
        """Per-class SHAP contributions in raw score units, shape (n, n_classes, n_features + 1), over every
        tree, as the probabilities are."""
        x = _matrix(features, self.feature_names)
        raw = self.booster.predict(x, pred_contrib=True)
        width = len(self.feature_names) + 1
        if self.classes == BINARY:
            # The binary booster explains log-odds of match; distinct is its mirror image.
            return np.stack([raw, -raw], axis=1)
        return raw.reshape(len(x), len(self.classes), width)

    def importances(self) -> dict[str, float]:
        """Total split gain per feature, largest first."""
        gains = self.booster.feature_importance(importance_type="gain")
        order = np.argsort(-gains, kind="stable")
        return {self.feature_names[i]: float(gains[i]) for i in order}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write model.txt (LightGBM text) and metadata.json into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_text(self.booster.model_to_string(), directory / MODEL_FILE)
        meta = {**self.meta, "classes": list(self.classes), "feature_names": self.feature_names,
                "thresholds": self.thresholds}
        write_json(meta, directory / META_FILE)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Self:
        """Read a model folder, refusing one trained on features other than this version's."""
        directory = Path(directory)
        for name in (MODEL_FILE, META_FILE):
            if not (directory / name).is_file():
                raise CatalogError(directory, f"not a model folder: {name} is missing")
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        names = list(meta.get("feature_names", []))
        if names != list(FEATURE_NAMES):
            extra = [n for n in names if n not in FEATURE_NAMES]
            lacking = [n for n in FEATURE_NAMES if n not in names]
            detail = f"model has {extra[:3]} not in this version, lacks {lacking[:3]}" if extra or lacking else "order differs"
            raise CatalogError(directory, f"model was trained on a different feature list ({detail}); retrain it with `catalog-match train`")
        revision = meta.get("feature_revision", 1)
        if revision != FEATURE_REVISION:
            raise CatalogError(directory, f"model was trained on feature revision {revision}, this version computes "
                                          f"revision {FEATURE_REVISION}; retrain it with `catalog-match train`")
        text = (directory / MODEL_FILE).read_text(encoding="utf-8")
        return cls(booster=lgb.Booster(model_str=text), classes=tuple(meta["classes"]), feature_names=names,
                   thresholds={k: float(v) for k, v in meta["thresholds"].items()}, meta=meta, model_text=text)


def _choose_thresholds(proba: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Grid-search the decision thresholds on validation probabilities (see module docstring)."""
    if classes == BINARY:
        return {"match_threshold": float(_best_match_threshold(proba[:, 0], y == 0, _THRESHOLD_GRID))}
    matched = (proba[:, 0] + proba[:, 1])[:, None] >= _THRESHOLD_GRID[None, :]
    best, best_key = (0.5, 1.0), (-1.0, 0.0)
    for bias in _BIAS_GRID:
        is_dup = (proba[:, 0] >= bias * proba[:, 1])[:, None]
        f1s = []
        for cls, pred in ((0, matched & is_dup), (1, matched & ~is_dup)):
            truth = (y == cls)[:, None]
            tp = (pred & truth).sum(0)
            fp = (pred & ~truth).sum(0)
            fn = truth.sum() - tp
            # A class neither true nor predicted has no F1 and does not dilute the mean.
            f1s.append(np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan))
        stacked = np.vstack(f1s)
        defined = ~np.isnan(stacked)
        macro = np.where(defined, stacked, 0.0).sum(0) / np.maximum(defined.sum(0), 1)
        for t, m in zip(_THRESHOLD_GRID, macro):
            # Ties go to the most neutral setting: bias near 1, threshold near 0.5.
            key = (round(float(m), 9), -abs(np.log2(bias)) - abs(t - 0.5))
            if key > best_key:
                best, best_key = (float(t), float(bias)), key
    return {"match_threshold": best[0], "variant_bias": best[1]}


def _best_match_threshold(p: np.ndarray, positive: np.ndarray, grid: np.ndarray) -> float:
    """The F1-optimal threshold on p(match); ties go to the one nearest 0.5."""
    pred = p[:, None] >= grid[None, :]
    tp = (pred & positive[:, None]).sum(0)
    fp = (pred & ~positive[:, None]).sum(0)
    fn = (~pred & positive[:, None]).sum(0)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    candidates = np.flatnonzero(np.isclose(f1, f1.max()))
    return grid[candidates[np.argmin(np.abs(grid[candidates] - 0.5))]]


def training_hash(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> str:
    """SHA-256 of the feature names, feature matrix and labels a model was trained on."""
    h = hashlib.sha256()
    h.update(json.dumps(list(names)).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int32).tobytes())
    return h.hexdigest()


def train_matcher(features: pl.DataFrame, labels: Sequence[str], settings: MatcherSettings,
                  sample_weight: np.ndarray | None = None, teacher_proba: np.ndarray | None = None, *,
                  valid_features: pl.DataFrame | None = None, valid_labels: Sequence[str] | None = None,
                  groups: Sequence[str] | np.ndarray | None = None,
                  feature_names: Sequence[str] | None = None) -> Matcher:
    """Train the matcher with early stopping and thresholds chosen on a validation set.

    The validation set is `valid_features`/`valid_labels` when given; else about `valid_fraction`
    of the rows, held out whole by `groups` when given (pairs of one product family stay on one
    side, as in a group-split evaluation), else stratified by class; held-out rows are not trained on.
    """
    classes = MULTICLASS if settings.mode == "multiclass" else BINARY
    names = list(feature_names if feature_names is not None else FEATURE_NAMES)
    x_all = _matrix(features, names)
    y_all = _encode(labels, classes)
    if len(y_all) != len(x_all):
        raise ValueError(f"{len(x_all)} feature rows but {len(y_all)} labels")
    w_all = np.ones(len(y_all)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if w_all.shape != (len(y_all),):
        raise ValueError(f"sample_weight must have shape {(len(y_all),)}, got {w_all.shape}")
    teacher = None if teacher_proba is None else np.asarray(teacher_proba, dtype=float)
    if teacher is not None and teacher.shape != (len(y_all), len(classes)):
        raise ValueError(f"teacher_proba must have shape {(len(y_all), len(classes))}, got {teacher.shape}")
    if len(y_all) == 0:
        raise ValueError("no training pairs")
    if valid_features is not None:
        train_idx = np.arange(len(y_all))
        x_valid, y_valid = _matrix(valid_features, names), _encode(valid_labels, classes)
    else:
        train_idx, valid_idx = (_stratified_split(y_all, settings.valid_fraction, settings.seed) if groups is None
                                else _group_split(np.asarray(groups), settings.valid_fraction, settings.seed))
        x_valid, y_valid = x_all[valid_idx], y_all[valid_idx]
    x, y = x_all[train_idx], y_all[train_idx]
    weight = w_all[train_idx] * _class_weights(y, len(classes), settings.class_weight)[y]
    x_fit, y_fit, w_fit = _soft_rows(x, y, weight, None if teacher is None else teacher[train_idx],
                                     settings.teacher_weight, len(classes))
    # Binary LightGBM labels 1 = positive; our class 0 is match.
    lgb_label = (y_fit == 0).astype(int) if classes == BINARY else y_fit
    params = _params(settings, len(classes))
    dtrain = lgb.Dataset(x_fit, label=lgb_label, weight=w_fit, feature_name=names, free_raw_data=False)
    callbacks, valid_sets = [], []
    has_valid = len(y_valid) > 0 and len(np.unique(y_valid)) > 1
    if has_valid:
        valid_label = (y_valid == 0).astype(int) if classes == BINARY else y_valid
        valid_w = _class_weights(y, len(classes), settings.class_weight)[y_valid]
        valid_sets = [lgb.Dataset(x_valid, label=valid_label, weight=valid_w, reference=dtrain)]
        callbacks = [lgb.early_stopping(settings.early_stopping_rounds, verbose=False)]
    booster = lgb.train(params, dtrain, num_boost_round=settings.num_boost_round,
                        valid_sets=valid_sets, callbacks=callbacks)
    best = booster.best_iteration or booster.current_iteration()
    # Re-read the truncated model so that in-memory and saved predictions are identical.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    # The settings come first: validation is scored as the model will score (early stopping included).
    matcher = Matcher(booster=booster, classes=classes, feature_names=names,
                      thresholds={"match_threshold": 0.5} if classes == BINARY else {"match_threshold": 0.5, "variant_bias": 1.0},
                      meta={"settings": json.loads(settings.to_json())})
    metrics: dict = {}
    if has_valid:
        proba = matcher.predict_proba(pl.DataFrame(x_valid, schema=names, orient="row"))
        matcher.thresholds = _choose_thresholds(proba, y_valid, classes)
        positive = ("match",) if classes == BINARY else ("duplicate", "variant")
        truth = np.asarray(classes, dtype=object)[y_valid]
        metrics = class_report(truth, matcher.decide(proba), classes, positive=positive)
    matcher.meta = {
        "mode": settings.mode,
        "feature_revision": FEATURE_REVISION,
        "seed": settings.seed,
        "settings": json.loads(settings.to_json()),
        "best_iteration": int(best),
        "n_train": int(len(y)),
        "n_valid": int(len(y_valid)),
        "class_counts": {c: int(n) for c, n in zip(classes, np.bincount(y_all, minlength=len(classes)))},
        "training_data_sha256": training_hash(x_all, y_all, names),
        "teacher_proba": teacher is not None,
        "validation_metrics": metrics,
        "library_versions": {"lightgbm": lgb.__version__, "numpy": np.__version__, "polars": pl.__version__,
                             "python": platform.python_version()},
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return matcher


def score_pairs(matcher: Matcher, features: pl.DataFrame) -> pl.DataFrame:
    """Score pairs: left_id, right_id, blockers, p_<class> per class, decision, uncertainty."""
    proba = matcher.predict_proba(features)
    keep = [c for c in ("left_id", "right_id", "blockers") if c in features.columns]
    return features.select(keep).with_columns(
        *[pl.Series(f"p_{c}", proba[:, i], dtype=pl.Float32) for i, c in enumerate(matcher.classes)],
        pl.Series("decision", matcher.decide(proba).tolist(), dtype=pl.String),
        pl.Series("uncertainty", matcher.uncertainty(proba), dtype=pl.Float32),
    )
