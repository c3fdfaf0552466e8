"""Why the matcher decided what it did: per-pair reasons in words from LightGBM contributions.

Each feature has a phrase built from its value and the two records' attributes ("same model number
DX123", "titles 96% alike"). The reasons of a pair are the phrases of the features that pushed its
raw score most toward the decided class (`pred_contrib`), plus the strongest ones that pushed
against it. A `variant` decision always lists how the records differ in colour or size when they
do, so the explanation never hides the difference it rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import polars as pl
from rich.progress import Progress

from features.joins import PAIR_KEYS, join_pairs
from features.pairs import RANKED

TOP_REASONS = 3
TOP_AGAINST = 2
CONTRIBUTION_CHUNK = 2_000
REASON_COLUMNS = ("reasons", "reason_features", "reason_contributions")
AGAINST_COLUMNS = ("against", "against_features", "against_contributions")
# Record columns shown side by side and read by the phrases.
RECORD_COLUMNS = ("title", "brand", "color", "size", "price", "model_number",
                  "attr_colors", "attr_sizes", "attr_models", "attr_capacity")
_LIST_COLUMNS = ("attr_colors", "attr_sizes", "attr_models", "attr_capacity")
# Features whose phrase may state the colour/size difference a variant decision rests on.
VARIANT_FEATURES = ("differs_only_color_size", "color_agree", "size_agree")
# Title tokens for the token diff (the page marks the same tokens).
TOKEN_PATTERN = r"\w+"
# A phrase builder: feature value expression -> phrase expression over the pair's record columns.
Phrase = Callable[[pl.Expr], pl.Expr]
# Contributions below what the page shows (two decimals of raw score) explain nothing.
_NOISE = 0.005
# Agreement at or above this is "the same" (set features are Jaccard overlaps; 1 = equal).
_SAME = 1 - 1e-6
_UNITS = (["gb", "tb", "mb", "kb", "mah"], ["GB", "TB", "MB", "KB", "mAh"])


class Explainable(Protocol):
    """What explanations need from a matcher (matching.model.Matcher provides it)."""

    classes: tuple[str, ...]
    feature_names: list[str]

    def contributions(self, features: pl.DataFrame) -> np.ndarray:
        """Per-class contributions, shape (n, n_classes, n_features + 1)."""


def side(name: str, which: str) -> pl.Expr:
    """The column `name` of the left or right record of a pair."""
    return pl.col(f"{which}_{name}")


def attach_records(pairs: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """Add the display columns of both records as left_<col> and right_<col>."""
    present = [c for c in RECORD_COLUMNS if c in records.columns]
    base = records.select("id", *present).with_columns(
        [pl.lit(None, dtype=pl.List(pl.String)).alias(c) for c in _LIST_COLUMNS if c not in present]
        + [pl.lit(None, dtype=pl.String).alias(c) for c in RECORD_COLUMNS if c not in present and c not in _LIST_COLUMNS]
    ).select("id", *RECORD_COLUMNS)
    out = pairs
    for which in ("left", "right"):
        renamed = base.rename({c: f"{which}_{c}" for c in RECORD_COLUMNS} | {"id": f"{which}_id"})
        out = out.join(renamed, on=f"{which}_id", how="left", maintain_order="left")
    return out.with_columns(
        side(c, w).cast(pl.List(pl.String)).fill_null(pl.lit([], dtype=pl.List(pl.String)))
        for c in _LIST_COLUMNS for w in ("left", "right")
    )


def title_tokens(which: str) -> pl.Expr:
    """Lower-cased word tokens of one side's title."""
    return side("title", which).str.to_lowercase().str.extract_all(TOKEN_PATTERN).list.unique(maintain_order=True)


def token_diff() -> list[pl.Expr]:
    """Tokens only in the left title and only in the right title, sorted."""
    left, right = title_tokens("left"), title_tokens("right")
    return [left.list.set_difference(right).list.sort().alias("left_only_tokens"),
            right.list.set_difference(left).list.sort().alias("right_only_tokens")]


def _shown(values: pl.Expr, upper: bool = False) -> pl.Expr:
    text = values.list.join("/")
    return text.str.to_uppercase() if upper else text.str.replace_many(*_UNITS)


def _differs(name: str) -> pl.Expr:
    left, right = side(name, "left"), side(name, "right")
    return (left.list.len() > 0) & (right.list.len() > 0) & (left.list.set_symmetric_difference(right).list.len() > 0)


def _versus(name: str) -> pl.Expr:
    upper = name == "attr_sizes"  # canonical sizes are lower case: "xl", "eu44"
    return _shown(side(name, "left"), upper) + pl.lit(" vs ") + _shown(side(name, "right"), upper)


def variant_difference(only: pl.Expr | None = None) -> pl.Expr:
    """How the two records differ in colour and/or size, null when they do not."""
    colour, size = _differs("attr_colors"), _differs("attr_sizes")
    only_word = pl.lit("") if only is None else pl.when(only.fill_nan(0) >= 0.5).then(pl.lit("only ")).otherwise(pl.lit(""))
    lead = pl.lit("differ ") + only_word
    both = _versus("attr_colors") + pl.lit(", ") + _versus("attr_sizes")
    return (
        pl.when(colour & size).then(lead + pl.lit("in colour and size: ") + both)
        .when(colour).then(lead + pl.lit("in colour: ") + _versus("attr_colors"))
        .when(size).then(lead + pl.lit("in size: ") + _versus("attr_sizes"))
    )


def _percent(value: pl.Expr) -> pl.Expr:
    return (value * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")


def _missing(value: pl.Expr) -> pl.Expr:
    return value.is_nan() | value.is_null()


def _agreement(value: pl.Expr, same: pl.Expr, differ: pl.Expr, what: str) -> pl.Expr:
    """Agreement features are 1 = equal, below 1 = (partly) conflicting, NaN = missing on a side."""
    return (
        pl.when(_missing(value)).then(pl.lit(f"{what} missing on one side"))
        .when(value >= _SAME).then(same)
        .otherwise(differ)
    )


def _model_phrase(v: pl.Expr) -> pl.Expr:
    models = side("attr_models", "left"), side("attr_models", "right")
    common = models[0].list.set_intersection(models[1]).list.first().str.to_uppercase()
    return _agreement(v, pl.lit("same model number ") + common.fill_null(""),
                      pl.lit("model numbers differ: ") + _shown(models[0]).str.to_uppercase() + pl.lit(" vs ")
                      + _shown(models[1]).str.to_uppercase(), "model number")


def _list_agreement(name: str, what: str) -> Phrase:
    def phrase(v: pl.Expr) -> pl.Expr:
        empty = (side(name, "left").list.len() == 0) | (side(name, "right").list.len() == 0)
        return _agreement(pl.when(empty).then(None).otherwise(v),
                          pl.lit(f"same {what}: ") + _shown(side(name, "left"), name == "attr_sizes"),
                          pl.lit(f"{what} differs: ") + _versus(name), what)
    return phrase


def _price_phrase(v: pl.Expr) -> pl.Expr:
    left, right = side("price", "left"), side("price", "right")
    gap = (left - right).abs() / pl.max_horizontal(left, right)
    shown = left.round(2).cast(pl.String) + pl.lit(" vs ") + right.round(2).cast(pl.String)
    return (
        pl.when(left.is_null() | right.is_null() | _missing(v)).then(pl.lit("price missing on one side"))
        .when((left - right).abs() < 0.005).then(pl.lit("same price ") + left.round(2).cast(pl.String))
        .when(gap < 0.005).then(pl.lit("price differs by <1% (") + shown + pl.lit(")"))
        .otherwise(pl.lit("price differs by ") + _percent(gap) + pl.lit(" (") + shown + pl.lit(")"))
    )


def _only_colour_size(v: pl.Expr) -> pl.Expr:
    return (
        pl.when(_missing(v)).then(pl.lit("colour/size missing on one side"))
        .when(v >= 0.5).then(variant_difference(v).fill_null(pl.lit("titles differ only in colour/size words")))
        .otherwise(pl.lit("differ in more than colour and size"))
    )


def _share(template: str, missing: str) -> Phrase:
    """A [0, 1] score in words: `template` with {} replaced by the percentage."""
    before, after = template.split("{}")
    return lambda v: pl.when(_missing(v)).then(pl.lit(missing)).otherwise(pl.lit(before) + _percent(v) + pl.lit(after))


def _flag(yes: str, no: str, missing: str) -> Phrase:
    return lambda v: pl.when(_missing(v)).then(pl.lit(missing)).when(v >= 0.5).then(pl.lit(yes)).otherwise(pl.lit(no))


def _score(template: str, missing: str) -> Phrase:
    """An unbounded score in words, two decimals."""
    before, after = template.split("{}")
    return lambda v: pl.when(_missing(v)).then(pl.lit(missing)).otherwise(
        pl.lit(before) + v.round(2).cast(pl.String) + pl.lit(after))


def _blocker(name: str) -> Phrase:
    return _flag(f"proposed by the {name} blocker", f"not proposed by the {name} blocker", f"{name} blocker unknown")


def _gap(name: str, side: str) -> Phrase:
    what = name.replace("_", " ")
    return _score(f"{what} {{}} from the best candidate of the {side} record", f"{what} missing")


PHRASES: dict[str, Phrase] = {
    "title_ratio": _share("titles {} alike (characters)", "title missing"),
    "title_token_set": _share("titles {} alike (shared words)", "title missing"),
    "title_partial_ratio": _share("titles {} alike (best partial match)", "title missing"),
    "core_ratio": _share("titles without colour/size {} alike", "title missing"),
    "core_jaccard": _share("titles without colour/size share {} of words", "no words left without colour/size"),
    "core_token_set": _share("titles without colour/size {} alike (shared words)",
                             "no words left without colour/size"),
    "core_idf_jaccard": _share("titles without colour/size share {} of word weight",
                               "no words left without colour/size"),
    "core_idf_max_unshared": _share("rarest word outside colour/size not in both is {} as rare as an unseen one",
                                    "no words left without colour/size"),
    "title_jaccard": _share("titles share {} of words", "title missing"),
    "title_containment": _share("{} of the shorter title's words are in the other", "title missing"),
    "title_idf_jaccard": _share("titles share {} of word weight (rare words weigh more)", "title missing"),
    "title_idf_containment": _share("{} of the lighter title's word weight is shared", "title missing"),
    "title_idf_max_shared": _share("rarest shared word is {} as rare as an unseen one", "no shared words"),
    "title_idf_max_unshared": _share("rarest unshared word is {} as rare as an unseen one", "no unshared words"),
    "title_idf_unshared": _score("unshared word weight {} (in unseen-word units)", "title missing"),
    "title_len_ratio": _share("title lengths {} alike", "title missing"),
    "numbers_jaccard": _share("titles share {} of their numbers", "no numbers in either title"),
    "core_numbers_containment": _share("{} of the numbers (versions, years) of one title are in the other",
                                   "no numbers in one of the titles without colour/size"),
    "edition_agree": _share("editions named (standard, pro, mac...) {} alike", "no edition named on one side"),
    "brand_sim": _share("brands {} alike", "brand missing on one side"),
    "brand_in_title": _flag("brand appears in the other title", "brand absent from the other title", "no brand"),
    "desc_jaccard": _share("descriptions share {} of words", "description missing on one side"),
    "title_in_other_desc": _share("{} of a title's words are in the other's description", "no description"),
    "emb_cosine": _score("text embeddings {} similar (cosine)", "no embedding"),
    "ann_cosine": _score("nearest-neighbour similarity {}", "not proposed as a nearest neighbour"),
    "price_ratio": _price_phrase,
    "model_agree": _model_phrase,
    "model_sim": _share("model numbers {} alike", "no model number on one side"),
    "model_prefix": _share("model numbers share {} of their leading characters", "no model number on one side"),
    "model_in_other_title": _flag("a model number appears in the other title", "no model number in the other title",
                                  "no model number on either side"),
    "model_in_other_desc": _flag("a model number appears in the other description",
                                 "no model number in the other description", "no model number or description"),
    "gtin_agree": _flag("same GTIN", "GTINs differ", "GTIN missing on one side"),
    "capacity_agree": _list_agreement("attr_capacity", "capacity"),
    "quantity_agree": _flag("same pack quantity", "pack quantities differ", "pack quantity missing on one side"),
    "color_agree": _list_agreement("attr_colors", "colour"),
    "size_agree": _list_agreement("attr_sizes", "size"),
    "differs_only_color_size": _only_colour_size,
    **{f"{name}_gap_{side}": _gap(name, side) for name in RANKED for side in ("left", "right")},
}


def phrase_for(name: str) -> Phrase:
    """The phrase builder of a feature: its own, a blocker's, or a generic 'name value'."""
    if name in PHRASES:
        return PHRASES[name]
    if name.startswith("blocker_"):
        return _blocker(name.removeprefix("blocker_"))
    return _score(name.replace("_", " ") + " {}", name.replace("_", " ") + " missing")


def states_difference(name: str, value: pl.Expr, dimension: str) -> pl.Expr:
    """Whether a feature's phrase states how the records differ in one dimension (colour or size)."""
    column = {"colour": "attr_colors", "size": "attr_sizes"}[dimension]
    if name == "differs_only_color_size":
        return (value.fill_nan(0) >= 0.5) & _differs(column)
    if (name, dimension) in (("color_agree", "colour"), ("size_agree", "size")):
        return (value.fill_nan(1) < _SAME) & _differs(column)
    return pl.repeat(False, pl.len())  # broadcasts even when no feature states a difference


def decided_contributions(matcher: Explainable, features: pl.DataFrame, decisions: pl.Series) -> np.ndarray:
    """Each pair's feature contributions toward its decided class, shape (n, n_features).

    TreeSHAP costs milliseconds per pair, so pairs go in chunks under a progress bar and only the
    decided class's slice is kept.
    """
    classes = list(matcher.classes)
    unknown = set(decisions.unique().drop_nulls().to_list()) - set(classes)
    if unknown:
        raise ValueError(f"decisions {sorted(unknown)} are not classes of the matcher {tuple(classes)}")
    width = len(matcher.feature_names)
    index = decisions.replace_strict(classes, list(range(len(classes))), return_dtype=pl.Int64).to_numpy()
    out = np.zeros((features.height, width))
    with Progress(transient=True) as progress:
        task = progress.add_task("explaining pairs", total=features.height)
        for start in range(0, features.height, CONTRIBUTION_CHUNK):
            stop = min(start + CONTRIBUTION_CHUNK, features.height)
            per_class = matcher.contributions(features.slice(start, stop - start))
            out[start:stop] = per_class[np.arange(stop - start), index[start:stop], :width]
            progress.advance(task, stop - start)
    return out


def _ranked(contrib: np.ndarray, k: int, sign: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, feature, contribution) of each row's k strongest contributions of one sign."""
    k = min(k, contrib.shape[1])
    order = np.argsort(-sign * contrib, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(contrib, order, axis=1)
    rows = np.repeat(np.arange(contrib.shape[0]), k)
    feats, values = order.ravel(), values.ravel()
    keep = sign * values > _NOISE
    return rows[keep], feats[keep], values[keep]


def _reason_lists(rows: np.ndarray, feats: np.ndarray, values: np.ndarray, phrases: np.ndarray,
                  names: list[str], n: int, columns: tuple[str, str, str]) -> pl.DataFrame:
    """Per-row lists of phrases, feature names and contributions, in rank order."""
    text, feature, contribution = columns
    long = pl.DataFrame({
        "_row": rows.astype(np.int64),
        text: pl.Series(phrases[rows, feats].tolist() if len(rows) else [], dtype=pl.String),
        feature: pl.Series(np.asarray(names, dtype=object)[feats].tolist() if len(rows) else [], dtype=pl.String),
        contribution: pl.Series(values, dtype=pl.Float64),
    })
    lists = long.group_by("_row", maintain_order=True).agg(pl.all())
    frame = pl.DataFrame({"_row": np.arange(n, dtype=np.int64)}).join(lists, on="_row", how="left", maintain_order="left")
    return frame.with_columns(
        pl.col(text, feature).fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col(contribution).fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
    ).drop("_row")


def _variant_rows(frame: pl.DataFrame, contrib: np.ndarray, names: list[str], stated: dict[str, np.ndarray],
                  rows: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Variant pairs whose supporting reasons miss part of their colour/size difference.

    Returns (row, feature, contribution) of the difference phrase to add, credited to the
    colour/size feature that supports the variant most.
    """
    unstated = np.zeros(frame.height, dtype=bool)
    for dimension, column in (("colour", "attr_colors"), ("size", "attr_sizes")):
        said = np.zeros(frame.height, dtype=bool)
        said[rows[stated[dimension][rows, feats]]] = True
        unstated |= frame.select(_differs(column)).to_series().to_numpy() & ~said
    missing = np.flatnonzero((frame["decision"] == "variant").to_numpy() & unstated)
    present = [names.index(f) for f in VARIANT_FEATURES if f in names]
    if len(missing) and not present:
        raise ValueError(f"variant pairs need a colour/size feature to explain them; the matcher has none of {VARIANT_FEATURES}")
    best = np.asarray(present)[np.argmax(contrib[np.ix_(missing, present)], axis=1)] if len(missing) else missing
    return missing, best, contrib[missing, best]


def explain_pairs(matcher: Explainable, scored: pl.DataFrame, features: pl.DataFrame, records: pl.DataFrame,
                  top: int = TOP_REASONS, against: int = TOP_AGAINST) -> pl.DataFrame:
    """Scored pairs with both records side by side, title token diff, and reasons for and against.

    `scored` has left_id, right_id, decision (and whatever else it carries); `features` the model's
    feature columns for the same pairs (joined on the ids); `records` the display columns by `id`.
    Added: left_/right_<display column>, left_only_tokens, right_only_tokens, reasons,
    reason_features, reason_contributions, against, against_features, against_contributions.
    """
    names = list(matcher.feature_names)
    feats = join_pairs(scored.select(PAIR_KEYS), features.select(*PAIR_KEYS, *names), "left")
    lacking = feats.filter(pl.any_horizontal(pl.col(names).is_null())).height
    if lacking:
        raise ValueError(f"{lacking} scored pairs have no feature row")
    frame = attach_records(scored, records).with_columns(token_diff())
    values = feats.select(pl.col(n).cast(pl.Float64) for n in names)
    work = pl.concat([frame.select(pl.col("^(left|right)_.*$"), "decision"), values.rename({n: f"_f_{n}" for n in names})],
                     how="horizontal")
    only = pl.col("_f_differs_only_color_size") if "differs_only_color_size" in names else None
    work = work.with_columns(variant_difference(only).alias("_difference"))
    phrases = work.select(phrase_for(n)(pl.col(f"_f_{n}")).alias(n) for n in names).to_numpy()
    stated = {d: work.select(states_difference(n, pl.col(f"_f_{n}"), d).fill_null(False).alias(n) for n in names).to_numpy()
              for d in ("colour", "size")}
    contrib = decided_contributions(matcher, feats, scored["decision"])

    rows, fidx, vals = _ranked(contrib, top, +1)
    missing, best, best_vals = _variant_rows(work, contrib, names, stated, rows, fidx)
    if len(missing):
        # The difference goes first; the same feature is not listed twice.
        drop = np.isin(rows * len(names) + fidx, missing * len(names) + best)
        rows, fidx, vals = rows[~drop], fidx[~drop], vals[~drop]
        phrases = phrases.copy()
        phrases[missing, best] = work["_difference"].to_numpy()[missing]
        order = np.argsort(np.concatenate([missing, rows]), kind="stable")
        rows = np.concatenate([missing, rows])[order]
        fidx = np.concatenate([best, fidx])[order]
        vals = np.concatenate([best_vals, vals])[order]
    supporting = _reason_lists(rows, fidx, vals, phrases, names, frame.height, REASON_COLUMNS)
    opposing = _reason_lists(*_ranked(contrib, against, -1), phrases, names, frame.height, AGAINST_COLUMNS)
    return pl.concat([frame, supporting, opposing], how="horizontal")
