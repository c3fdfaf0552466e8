"""Pairwise features of candidate pairs, vectorised over the pairs frame in chunks.

Every feature is a Float32 column; NaN means "cannot be judged" (a value missing on either side).
Agreement features are 1 = equal, 0 = conflicting; set-valued ones give the Jaccard overlap in between.
Similarities are in [0, 1]; IDF features are divided by the IDF of an unseen token so they lie in [0, 1]
(the unshared mass counts in units of that maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Prefix
from rich.progress import Progress

from features.attributes import comparable_sizes
from features.idf import TokenIdf
from features.records import CatalogError
from features.text import normalize_text, tokenize
from features.vocab import EDITION_RE, EDITION_SURFACE

BLOCKERS = ("ann", "model", "gtin", "brand_title", "brand_words", "sorted")

FEATURE_NAMES: list[str] = [
    # title strings (rapidfuzz scores / 100)
    "title_ratio", "title_token_set", "title_partial_ratio",
    # title with colour and size words removed
    "core_ratio", "core_jaccard", "core_token_set", "core_idf_jaccard", "core_idf_max_unshared",
    # title token sets, plain and IDF-weighted (rare shared tokens weigh more)
    "title_jaccard", "title_containment", "title_idf_jaccard", "title_idf_containment",
    "title_idf_max_shared", "title_idf_max_unshared", "title_idf_unshared", "title_len_ratio",
    "numbers_jaccard", "core_numbers_containment", "edition_agree",
    # brand and description
    "brand_sim", "brand_in_title", "desc_jaccard", "title_in_other_desc",
    # embeddings and blocking scores
    "emb_cosine", "ann_cosine",
    "price_ratio",
    # identifiers
    "model_agree", "model_sim", "model_prefix", "model_in_other_title", "model_in_other_desc", "gtin_agree",
    # measures and variant attributes
    "capacity_agree", "quantity_agree", "color_agree", "size_agree", "differs_only_color_size",
    *(f"blocker_{b}" for b in BLOCKERS),
]
# Scores also given relative to the best candidate of each record: a pair that is not its record's
# best match among the candidates is less likely a match, whatever its absolute similarity.
RANKED = ("emb_cosine", "title_idf_jaccard", "title_token_set", "title_idf_containment", "title_partial_ratio")
GAP_FEATURES = [f"{name}_gap_{side}" for name in RANKED for side in ("left", "right")]
FEATURE_NAMES += GAP_FEATURES
# Raised whenever a feature changes meaning under the same name: models and cached features of another
# revision are stale. 2: IDF weights are shares of a fully rare token's (features.idf.RARE_AT).
FEATURE_REVISION = 2
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

# Core-title IDF Jaccard from which two listings count as the same product line.
DIFFERS_ONLY_CORE_SIM = 0.75
_PAIR_FEATURES = [n for n in FEATURE_NAMES if n not in GAP_FEATURES]  # computed pair by pair, the rest across pairs
CHUNK_PAIRS = 200_000
_EMB_BLOCK = 8192
_DESC_CHARS = 300
_TEXTS = ("title", "core", "brand", "model_text")  # compared with rapidfuzz
_TOKENS = ("tokens", "core_tokens", "desc_tokens", "brand_tokens")  # compared as sets of token numbers


@dataclass
class _Side:
    """Per-record values the features compare, computed once per record rather than once per pair."""

    frame: pl.DataFrame  # token-number lists and attributes, gathered per chunk
    texts: dict[str, pl.Series]  # compared with rapidfuzz ("" where missing)
    present: dict[str, np.ndarray]  # whether each text is there
    compact: dict[str, pl.Series]  # title (plus models) and description without spaces, searched for models
    idf_sum: np.ndarray  # IDF mass of each title's tokens
    core_idf_sum: np.ndarray  # IDF mass of each core title's tokens

    def at(self, rows: np.ndarray) -> _Side:
        """The values of the records at ``rows`` only, renumbered in that order."""
        return _Side(
            frame=self.frame[rows], texts={k: v.gather(rows) for k, v in self.texts.items()},
            present={k: v[rows] for k, v in self.present.items()},
            compact={k: v.gather(rows) for k, v in self.compact.items()},
            idf_sum=self.idf_sum[rows], core_idf_sum=self.core_idf_sum[rows],
        )


def _side_frame(attrs: pl.DataFrame) -> pl.DataFrame:
    """The per-record columns the features read, under short names."""
    desc = pl.col("_desc")
    return attrs.with_columns(normalize_text(pl.col("description").str.slice(0, _DESC_CHARS)).alias("_desc")).select(
        pl.col("attr_title").alias("title"),
        pl.col("attr_core").alias("core"),
        pl.col("attr_brand").alias("brand"),
        tokenize(pl.col("attr_title")).alias("tokens"),
        tokenize(pl.col("attr_core")).alias("core_tokens"),
        tokenize(desc).fill_null([]).alias("desc_tokens"),
        tokenize(pl.col("attr_brand")).fill_null([]).alias("brand_tokens"),
        # Titles and descriptions without spaces, searched for the other record's model numbers.
        (pl.col("attr_title").str.replace_all(" ", "", literal=True) + "|" + pl.col("attr_models").list.join("|"))
        .alias("compact_title"),
        desc.str.replace_all(" ", "", literal=True).alias("compact_desc"),
        pl.col("attr_models").list.sort().list.join(" ").alias("model_text"),
        pl.col("price").cast(pl.Float64),
        pl.col("attr_models").alias("models"),
        pl.col("attr_gtin").alias("gtin"),
        pl.col("attr_capacity").alias("capacity"),
        pl.col("attr_quantity").alias("quantity"),
        pl.col("attr_colors").alias("colors"),
        comparable_sizes(attrs).alias("sizes"),
        # Numbers of the core title, up to 4 digits (longer ones are codes): versions, years, line numbers.
        # "v17.0", "17" and "deluxe17" all give 17; "6.x" gives 6.
        pl.col("attr_core").str.replace_all(r"(\d)\.(?:0+|x)\b", "${1}").str.replace_all("[a-z]+", " ")
        .str.extract_all(r"\b\d{1,4}(?:\.\d+)?\b").list.unique().alias("core_numbers"),
        pl.col("attr_title").str.extract_all(EDITION_RE)
        .list.eval(pl.element().replace_strict(EDITION_SURFACE)).list.unique().alias("editions"),
    )


@dataclass
class _Vocab:
    """Each token's IDF share and whether it holds a digit, by token number (``_sides``)."""

    idf: np.ndarray
    digit: np.ndarray

    def stats(self, lists: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per list of token numbers: IDF sum, IDF max (0 when empty) and number of tokens with a digit."""
        lens = lists.list.len().to_numpy().astype(np.int64)
        pos = lists.explode(empty_as_null=False).drop_nulls().to_numpy()
        owner = np.repeat(np.arange(len(lens)), lens)
        w = self.idf[pos]
        total = np.bincount(owner, weights=w, minlength=len(lens))
        digits = np.bincount(owner, weights=self.digit[pos], minlength=len(lens))
        top = np.zeros(len(lens), dtype=np.float64)
        nonempty = lens > 0
        if nonempty.any():
            starts = np.concatenate([[0], np.cumsum(lens)[:-1]])[nonempty]
            top[nonempty] = np.maximum.reduceat(w, starts)
        return total, top, digits


def _sides(frames: list[pl.DataFrame], idf: TokenIdf) -> tuple[list[_Side], _Vocab]:
    """Build each side with tokens replaced by their numbers in the sorted vocabulary of all sides' tokens."""
    words = pl.concat([
        f.select(pl.concat_list(*_TOKENS).explode(empty_as_null=False).alias("token")) for f in frames
    ])["token"].drop_nulls().unique().sort()
    # Numbers index the vocabulary's arrays directly, where 64-bit token hashes were looked up in it for
    # every pair (a tenth of a million-listing run's feature time), and halve the lists' memory.
    vocab = _Vocab(idf=idf.weights(words), digit=words.str.contains(r"\d").to_numpy().astype(np.float64))
    numbers = pl.Enum(words)
    sides = []
    for f in frames:
        numbered = f.drop(*_TEXTS, "compact_title", "compact_desc").with_columns(
            pl.col(c).list.eval(pl.element().cast(numbers).to_physical()) for c in _TOKENS
        )
        sides.append(_Side(
            frame=numbered,
            texts={c: f[c].fill_null("") for c in _TEXTS},
            present={c: (f[c].is_not_null() & (f[c] != "")).to_numpy() for c in _TEXTS},
            compact={"title": f["compact_title"], "desc": f["compact_desc"]},
            idf_sum=vocab.stats(numbered["tokens"])[0],
            core_idf_sum=vocab.stats(numbered["core_tokens"])[0],
        ))
    return sides, vocab


_PairTexts = dict[str, tuple[list[str], list[str], np.ndarray]]


def _pair_texts(l: _Side, r: _Side, li: np.ndarray, ri: np.ndarray) -> _PairTexts:
    """Each compared text of the pairs' left and right records, and whether both have it."""
    # Gathered once for all of a text's scorers, as new strings that lie together in memory: rapidfuzz
    # then reads them faster than a million records' strings picked at random.
    return {c: (l.texts[c].gather(li).to_list(), r.texts[c].gather(ri).to_list(), l.present[c][li] & r.present[c][ri])
            for c in _TEXTS}


def _fuzz(texts: _PairTexts, text: str, scorer, scale: float = 100) -> np.ndarray:
    """Row-wise rapidfuzz score divided by ``scale`` (the scorer's maximum); NaN where either side lacks the text."""
    left, right, both = texts[text]
    scores = process.cpdist(left, right, scorer=scorer, workers=-1, dtype=np.float32) / scale
    scores[~both] = np.nan
    return scores


def _overlap(a: str, b: str, of=None) -> pl.Expr:
    """Shared values of two list columns over their union (Jaccard), or over ``of`` of the two lengths
    (``pl.min_horizontal``: containment of the shorter); null when either list is empty."""
    inter = pl.col(a).list.set_intersection(pl.col(b)).list.len()
    lens = pl.col(a).list.len(), pl.col(b).list.len()
    den = pl.col(a).list.set_union(pl.col(b)).list.len() if of is None else of(*lens)
    return pl.when((lens[0] > 0) & (lens[1] > 0)).then(inter / den)


def _equal(a: str, b: str) -> pl.Expr:
    """1.0 / 0.0 equality of two scalar columns; null when either is null."""
    return (pl.col(a) == pl.col(b)).cast(pl.Float32)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _model_in_other(
    l: pl.DataFrame, r: pl.DataFrame, ls: _Side, rs: _Side, li: np.ndarray, ri: np.ndarray, text: str
) -> np.ndarray:
    """1 if a model number of either record occurs in the other's compacted ``text``; NaN if nothing to search."""
    hit = np.zeros(l.height, dtype=bool)
    searched = np.zeros(l.height, dtype=bool)
    for mine, other, other_rows in ((l["models"], rs.compact[text], ri), (r["models"], ls.compact[text], li)):
        rows = (mine.list.len() > 0).arg_true()
        found = (
            pl.DataFrame({"row": rows, "m": mine.gather(rows), "t": other.gather(other_rows[rows.to_numpy()])})
            .filter(pl.col("t").is_not_null() & (pl.col("t") != ""))
            .explode("m")
            .group_by("row")
            .agg(pl.col("t").str.contains(pl.col("m"), literal=True).any())
        )
        hit[found["row"].to_numpy()] |= found["t"].to_numpy()
        searched[found["row"].to_numpy()] = True
    return np.where(searched, hit.astype(np.float32), np.nan)


def _cosine(left_emb: np.ndarray | None, right_emb: np.ndarray | None, li: np.ndarray, ri: np.ndarray) -> np.ndarray:
    """Row-wise dot product of L2-normalised embeddings, in blocks that stay in cache; NaN without embeddings."""
    out = np.full(len(li), np.nan, dtype=np.float32)
    if left_emb is not None and right_emb is not None:
        for s in range(0, len(li), _EMB_BLOCK):
            block = slice(s, s + _EMB_BLOCK)
            out[block] = np.einsum("ij,ij->i", left_emb[li[block]], right_emb[ri[block]])
    return out


def _chunk_features(
    pairs: pl.DataFrame, ls: _Side, rs: _Side, li: np.ndarray, ri: np.ndarray,
    cosine: np.ndarray, vocab: _Vocab,
) -> pl.DataFrame:
    """Features of one chunk of pairs; ``li``/``ri`` are the record rows of each pair."""
    n = pairs.height
    l, r = ls.frame[li], rs.frame[ri]
    both = pl.concat([l.select(pl.all().name.prefix("l_")), r.select(pl.all().name.prefix("r_"))], how="horizontal")
    lists = both.select(
        pl.col("l_tokens").list.set_intersection("r_tokens").alias("inter"),
        pl.col("l_tokens").list.set_symmetric_difference("r_tokens").alias("sym"),
        pl.col("l_core_tokens").list.set_intersection("r_core_tokens").alias("core_inter"),
        pl.col("l_core_tokens").list.set_symmetric_difference("r_core_tokens").alias("core_sym"),
        pl.col("l_tokens").list.len().alias("n_l"),
        pl.col("r_tokens").list.len().alias("n_r"),
        _overlap("l_desc_tokens", "r_desc_tokens").alias("desc_jaccard"),
        # Share of one title's tokens found in the other's description (short title vs long description).
        pl.max_horizontal(
            pl.when(pl.col(f"{b}_desc_tokens").list.len() > 0).then(
                pl.col(f"{a}_tokens").list.set_intersection(f"{b}_desc_tokens").list.len()
                / pl.col(f"{a}_tokens").list.len()
            )
            for a, b in (("l", "r"), ("r", "l"))
        ).alias("title_in_other_desc"),
        # 1 when every token of a brand occurs in the other title; null when neither has a brand.
        pl.max_horizontal(
            pl.when(pl.col(f"{a}_brand_tokens").list.len() > 0).then(
                (pl.col(f"{a}_brand_tokens").list.set_intersection(f"{b}_tokens").list.len()
                 == pl.col(f"{a}_brand_tokens").list.len()).cast(pl.Float32)
            )
            for a, b in (("l", "r"), ("r", "l"))
        ).alias("brand_in_title"),
    )
    inter_sum, inter_max, inter_digits = vocab.stats(lists["inter"])
    _, sym_max, sym_digits = vocab.stats(lists["sym"])
    n_inter = lists["inter"].list.len().to_numpy().astype(np.float64)
    n_sym = lists["sym"].list.len().to_numpy().astype(np.float64)
    n_l, n_r = lists["n_l"].to_numpy().astype(np.float64), lists["n_r"].to_numpy().astype(np.float64)
    core_inter = lists["core_inter"].list.len().to_numpy().astype(np.float64)
    core_sym = lists["core_sym"].list.len().to_numpy().astype(np.float64)
    core_inter_sum = vocab.stats(lists["core_inter"])[0]
    _, core_sym_max, _ = vocab.stats(lists["core_sym"])
    core_idf_jaccard = _ratio(core_inter_sum, ls.core_idf_sum[li] + rs.core_idf_sum[ri] - core_inter_sum)
    l_idf, r_idf = ls.idf_sum[li], rs.idf_sum[ri]
    has_tokens = (n_l > 0) & (n_r > 0)

    blockers = pairs["blockers"] if "blockers" in pairs.columns else pl.Series([None] * n, dtype=pl.List(pl.String))
    ann_sim = pairs["ann_sim"] if "ann_sim" in pairs.columns else pl.Series([None] * n, dtype=pl.Float32)
    attrs_differ = (pl.col("l_colors") != pl.col("r_colors")) | (pl.col("l_sizes") != pl.col("r_sizes"))
    price_lo = pl.min_horizontal("l_price", "r_price")
    model_both = (pl.col("l_models").list.len() > 0) & (pl.col("r_models").list.len() > 0)
    model_inter = pl.col("l_models").list.set_intersection(pl.col("r_models")).list.len()
    texts = _pair_texts(ls, rs, li, ri)
    exprs = {
        "title_ratio": _fuzz(texts, "title", fuzz.ratio),
        "title_token_set": _fuzz(texts, "title", fuzz.token_set_ratio),
        "title_partial_ratio": _fuzz(texts, "title", fuzz.partial_ratio),
        "core_ratio": _fuzz(texts, "core", fuzz.ratio),
        "core_jaccard": _ratio(core_inter, core_inter + core_sym),
        "core_token_set": _fuzz(texts, "core", fuzz.token_set_ratio),
        "core_idf_jaccard": core_idf_jaccard,
        "core_idf_max_unshared": np.where(core_inter + core_sym > 0, core_sym_max, np.nan),
        "title_jaccard": _ratio(n_inter, n_inter + n_sym),
        "title_containment": np.where(has_tokens, _ratio(n_inter, np.minimum(n_l, n_r)), np.nan),
        "title_idf_jaccard": _ratio(inter_sum, l_idf + r_idf - inter_sum),
        "title_idf_containment": np.where(has_tokens, _ratio(inter_sum, np.minimum(l_idf, r_idf)), np.nan),
        "title_idf_max_shared": inter_max,
        "title_idf_max_unshared": sym_max,
        "title_idf_unshared": l_idf + r_idf - 2 * inter_sum,
        "title_len_ratio": np.where(has_tokens, _ratio(np.minimum(n_l, n_r), np.maximum(n_l, n_r)), np.nan),
        "numbers_jaccard": _ratio(inter_digits, inter_digits + sym_digits),
        "core_numbers_containment": _overlap("l_core_numbers", "r_core_numbers", pl.min_horizontal),
        "edition_agree": _overlap("l_editions", "r_editions"),
        "brand_sim": _fuzz(texts, "brand", fuzz.ratio),
        "brand_in_title": lists["brand_in_title"],
        "desc_jaccard": lists["desc_jaccard"],
        "title_in_other_desc": lists["title_in_other_desc"],
        "emb_cosine": cosine,
        "ann_cosine": ann_sim,
        "price_ratio": pl.when(pl.col("l_price").is_not_null() & pl.col("r_price").is_not_null() & (price_lo > 0)).then(
            price_lo / pl.max_horizontal("l_price", "r_price")
        ),
        "model_agree": pl.when(model_both).then((model_inter > 0).cast(pl.Float32)),
        "model_sim": _fuzz(texts, "model_text", fuzz.token_set_ratio),
        # Shared leading characters of the model numbers: siblings of one line share a stem ("cb49251"/"cb49252").
        "model_prefix": _fuzz(texts, "model_text", Prefix.normalized_similarity, scale=1),
        "model_in_other_title": _model_in_other(l, r, ls, rs, li, ri, "title"),
        "model_in_other_desc": _model_in_other(l, r, ls, rs, li, ri, "desc"),
        "gtin_agree": _equal("l_gtin", "r_gtin"),
        "capacity_agree": _overlap("l_capacity", "r_capacity"),
        "quantity_agree": _equal("l_quantity", "r_quantity"),
        "color_agree": _overlap("l_colors", "r_colors"),
        "size_agree": _overlap("l_sizes", "r_sizes"),
        # Nearly the same title once colour and size words are gone (IDF-weighted, so rewording with
        # common words still counts), yet colours or sizes differ.
        "differs_only_color_size": (
            pl.lit(np.nan_to_num(core_idf_jaccard) >= DIFFERS_ONLY_CORE_SIM) & attrs_differ
        ).cast(pl.Float32),
        **{f"blocker_{b}": pl.lit(blockers).list.contains(b).cast(pl.Float32) for b in BLOCKERS},
    }
    as_expr = {k: pl.lit(pl.Series(v)) if isinstance(v, (np.ndarray, pl.Series)) else v for k, v in exprs.items()}
    feats = both.select(as_expr[name].cast(pl.Float32).fill_null(np.nan).alias(name) for name in _PAIR_FEATURES)
    return pl.concat([pairs, feats], how="horizontal")


@dataclass
class _IdRows:
    """Records' ids sorted once, so each chunk of pairs finds its rows by binary search: a join against
    a million ids rebuilt its hash table for every chunk (0.46 s a chunk; this 0.23 s)."""

    order: pl.Series  # row of each sorted id
    ids: pl.Series  # sorted

    @classmethod
    def of(cls, ids: pl.Series) -> _IdRows:
        """Index the ids of one side's records, in row order."""
        ids = ids.cast(pl.String)
        order = ids.arg_sort()
        return cls(order, ids.gather(order))

    def rows(self, ids: pl.Series, side: str) -> np.ndarray:
        """Row positions of ``ids``; unknown ids are an input error."""
        pos = self.ids.search_sorted(ids).clip(0, max(self.ids.len() - 1, 0))
        if self.ids.len():
            known = (self.ids.gather(pos) == ids).fill_null(False)
        else:
            known = pl.Series(np.zeros(ids.len(), dtype=bool))
        if not known.all():
            bad = int((~known).arg_max())
            raise CatalogError("<pairs>", f"id {ids[bad]!r} is not in the {side} records", row=bad + 1,
                               column=f"{side}_id")
        return self.order.gather(pos).to_numpy().astype(np.int64)

    def at(self, rows: np.ndarray) -> _IdRows:
        """The index of the records at ``rows`` (ascending) only, renumbered 0..len(rows)-1."""
        order = self.order.to_numpy()
        kept = np.flatnonzero(np.isin(order, rows))  # sorted positions, so the ids stay sorted
        return _IdRows(pl.Series(np.searchsorted(rows, order[kept])), self.ids.gather(kept))


def record_bests(feats: pl.DataFrame | pl.LazyFrame, one_catalog: bool) -> dict[str, pl.DataFrame]:
    """Best RANKED scores per record over ``feats``; keys "left" and "right" (one table for one catalog).

    ``feats`` may be a lazy concatenation of a run's chunks (read streaming), so gaps are taken over all
    of a run's pairs.
    """
    scores = [pl.col(n).fill_nan(None) for n in RANKED]
    feats = feats.lazy()
    if one_catalog:
        ends = pl.concat([feats.select(pl.col(end).alias("id"), *scores) for end in ("left_id", "right_id")])
        best = ends.group_by("id").agg(pl.all().max()).collect(engine="streaming")
        return {"left": best, "right": best}
    return {side: feats.select(pl.col(f"{side}_id").alias("id"), *scores).group_by("id").agg(pl.all().max())
            .collect(engine="streaming") for side in ("left", "right")}


def apply_gaps(feats: Frame, bests: dict[str, pl.DataFrame]) -> Frame:
    """Set each ``*_gap_<side>`` to the RANKED score minus the best score of that side's record (NaN if
    missing); lazily for a lazy frame."""
    for side in ("left", "right"):
        best = bests[side].rename(lambda c: c if c == "id" else f"_best_{c}")
        feats = feats.join(best.lazy() if isinstance(feats, pl.LazyFrame) else best, left_on=f"{side}_id",
                           right_on="id", how="left", maintain_order="left").with_columns(
            (pl.col(n).fill_nan(None) - pl.col(f"_best_{n}")).cast(pl.Float32).fill_null(np.nan)
            .alias(f"{n}_gap_{side}") for n in RANKED
        ).drop(f"_best_{n}" for n in RANKED)
    return feats


def best_gaps(feats: pl.DataFrame, one_catalog: bool) -> pl.DataFrame:
    """Each RANKED score minus the best score among all pairs of the left (right) record; 0 for that best pair.

    In one catalog a record's pairs are those it is on either side of; across two sources, those of
    its own side. A caller that computes features chunk by chunk combines ``record_bests`` of all
    chunks with ``record_bests`` and applies them with ``apply_gaps``.
    """
    return apply_gaps(feats, record_bests(feats, one_catalog))


@dataclass
class RecordValues:
    """Per-record values of the records pairs refer to (one catalog, or two sources), computed once and
    shared by every chunk of pairs among them."""

    left_rows: _IdRows
    right_rows: _IdRows
    left: _Side
    right: _Side  # the same object as ``left`` in one catalog
    vocab: _Vocab
    left_emb: np.ndarray | None
    right_emb: np.ndarray | None

    def only(self, pairs: pl.DataFrame) -> RecordValues:
        """The values of just the records ``pairs`` name: what a task elsewhere (a Dask worker) needs for
        them, instead of every record of the round."""
        left = np.unique(self.left_rows.rows(pairs["left_id"].cast(pl.String), "left"))
        right = np.unique(self.right_rows.rows(pairs["right_id"].cast(pl.String), "right"))
        one_catalog = self.left is self.right
        if one_catalog:
            left = right = np.union1d(left, right)

        def side(ids: _IdRows, values: _Side, emb: np.ndarray | None, rows: np.ndarray):
            return ids.at(rows), values.at(rows), None if emb is None else emb[rows]

        left_rows, left_side, left_emb = side(self.left_rows, self.left, self.left_emb, left)
        right_rows, right_side, right_emb = ((left_rows, left_side, left_emb) if one_catalog
                                             else side(self.right_rows, self.right, self.right_emb, right))
        return RecordValues(left_rows, right_rows, left_side, right_side, self.vocab, left_emb, right_emb)


def record_values(left: pl.DataFrame, right: pl.DataFrame, left_emb: np.ndarray | None,
                  right_emb: np.ndarray | None, idf: TokenIdf) -> RecordValues:
    """Tokens, IDF masses and texts of each record; ``right`` is ``left`` for one catalog."""
    frames = [_side_frame(left)] if left is right else [_side_frame(left), _side_frame(right)]
    sides, vocab = _sides(frames, idf)
    left_rows = _IdRows.of(left["id"])
    right_rows = left_rows if left is right else _IdRows.of(right["id"])
    return RecordValues(left_rows, right_rows, sides[0], sides[-1], vocab, left_emb, right_emb)


def values_features(pairs: pl.DataFrame, values: RecordValues,
                    bests: dict[str, pl.DataFrame] | None = None, gaps: bool = True) -> pl.DataFrame:
    """Return ``pairs`` plus one Float32 column per name in FEATURE_NAMES (NaN = missing), from records'
    precomputed ``values``.

    Gap features compare each pair with the best pair of its records among ``pairs``, or, given
    ``bests`` (from ``record_bests``), with those of an earlier round of pairs; ``gaps`` False leaves them
    NaN, for a caller that takes them later against the bests of many chunks (``apply_gaps``).
    """
    pairs = pairs.drop(FEATURE_NAMES, strict=False)
    li = values.left_rows.rows(pairs["left_id"].cast(pl.String), "left")
    ri = values.right_rows.rows(pairs["right_id"].cast(pl.String), "right")
    ls, rs = values.left, values.right
    chunks = []
    with Progress(transient=True) as progress:
        task = progress.add_task("pair features", total=pairs.height)
        for start in range(0, max(pairs.height, 1), CHUNK_PAIRS):
            stop = min(start + CHUNK_PAIRS, pairs.height)
            cl, cr = li[start:stop], ri[start:stop]
            chunks.append(_chunk_features(
                pairs.slice(start, stop - start), ls, rs, cl, cr, _cosine(values.left_emb, values.right_emb, cl, cr),
                values.vocab,
            ))
            progress.advance(task, stop - start)
    feats = pl.concat(chunks)
    if not gaps:
        feats = feats.with_columns(pl.lit(np.nan, pl.Float32).alias(name) for name in GAP_FEATURES)
    elif bests is None:
        feats = best_gaps(feats, ls is rs)
    else:
        feats = apply_gaps(feats, bests)
    return feats.select(*pairs.columns, *FEATURE_NAMES)


def pair_features(
    pairs: pl.DataFrame, left: pl.DataFrame, right: pl.DataFrame,
    left_emb: np.ndarray | None, right_emb: np.ndarray | None, idf: TokenIdf,
    bests: dict[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Return ``pairs`` plus one Float32 column per name in FEATURE_NAMES (as ``values_features``), the
    records' values computed here."""
    return values_features(pairs, record_values(left, right, left_emb, right_emb, idf), bests)
