"""Typed settings for the matcher, the clustering and the model promotion gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from features.settings import Settings


class MatcherSettings(Settings):
    """How the LightGBM matcher is trained."""

    mode: Literal["multiclass", "binary"] = "multiclass"
    seed: int = 0
    # Defaults chosen on the validation splits of abt-buy and amazon-google (small trees, half the
    # features per tree, unweighted classes did best there; see data/model/README.md).
    num_boost_round: int = Field(2000, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(15, ge=2)
    min_data_in_leaf: int = Field(20, ge=1)
    feature_fraction: float = Field(0.5, gt=0, le=1)
    early_stopping_rounds: int = Field(100, ge=1)
    valid_fraction: float = Field(0.2, gt=0, lt=1)
    class_weight: Literal["balanced", "none"] = "none"
    # L2 penalty on leaf values. A multiclass leaf of near-certain rows has a tiny hessian, and without a
    # penalty its Newton step explodes: trained on the 1.17M pairs of a generated 100,000-listing catalog
    # (the scale bench's model), leaves reached 1,840 in raw score, validation loss turned after 106 rounds
    # and macro F1 was 0.945; with 1, leaves stay under 4 and it is 0.954.
    lambda_l2: float = Field(1.0, ge=0)
    # Fixed for reproducibility; one thread because OpenMP spin-waits on a busy shared machine
    # made two threads ~100x slower, and training sets (candidate pairs) are small.
    num_threads: int = Field(1, ge=1)
    # Share of the target taken from teacher probabilities when train_matcher gets teacher_proba.
    teacher_weight: float = Field(0.5, ge=0, le=1)


class ClusterSettings(Settings):
    """Thresholds of the two-level clustering (average linkage with attribute constraints)."""

    # Two duplicate groups merge only while the mean p_duplicate over all their cross pairs is at least this.
    duplicate_threshold: float = Field(0.5, gt=0, le=1)
    # Two families merge only while the mean p_duplicate + p_variant over all their cross pairs is at least this.
    family_threshold: float = Field(0.6, gt=0, le=1)
    # A cross pair blocking never proposed counts as this probability: low enough that a chain of
    # pairwise links does not merge records that were never compared.
    unscored_weight: float = Field(0.25, ge=0, lt=1)
    # How much such a pair weighs against a scored one. Duplicates are near-identical, so blocking
    # proposes almost all their pairs; variants differ more and blocking proposes fewer of them.
    duplicate_unscored_share: float = Field(1.0, ge=0, le=1)
    family_unscored_share: float = Field(0.3, ge=0, le=1)
    # A group or family may span two known brands only when the merge's mean linkage reaches this.
    cross_brand_threshold: float = Field(0.97, ge=0, le=1)
    # Records whose values are both known and disjoint in any of these columns never share a duplicate group.
    # attr_models is left out by default: listings add colour/region suffixes (PM1327BK vs PM1327), so
    # exact disjointness vetoed 19% of true Abt-Buy duplicate pairs.
    conflict_attributes: list[str] = Field(default_factory=lambda: ["attr_colors", "attr_sizes", "attr_capacity"])
    # A scored pair at or above this p_duplicate may share a group despite conflicting attributes:
    # the matcher saw those attributes, so such a conflict is more likely an extraction slip
    # ("blk" vs "black", "30 34" vs "30x34"). 1.0 makes the attribute veto absolute.
    conflict_override: float = Field(0.7, gt=0, le=1)

    @model_validator(mode="after")
    def _unscored_below_thresholds(self) -> ClusterSettings:
        if self.unscored_weight >= min(self.duplicate_threshold, self.family_threshold):
            raise ValueError("unscored_weight must be below duplicate_threshold and family_threshold")
        return self


class ExpandSettings(Settings):
    """Later-round candidates in one catalog: after scoring, pairs of records that share a strong link,
    and the likeliest partners of records with none."""

    # Blocking proposes a listing's nearest few neighbours; a family of a dozen colours and sizes has more
    # members than that, so many of its pairs are never scored. One hop over scored links reaches them.
    enabled: bool = True
    min_probability: float = Field(0.5, gt=0, le=1, description="p_duplicate + p_variant of a link to hop over")
    partners: int = Field(10, ge=1, description="strongest links per record that take part")
    # Each round hops over the links the one before it scored, so a family reached only through a
    # chain of members gets its pairs scored too; a round that finds no new pair ends the expansion.
    rounds: int = Field(2, ge=1, description="expansion rounds after the first scoring")
    # A listing with no strong link after the first scoring is most often a duplicate that blocking
    # missed among its line's many variants (in a million generated listings, 86% of the missed
    # duplicate pairs had a record with no link at all). The first expansion round compares each
    # such listing with the other listings of its brand, colours and sizes, which are few.
    rescue: bool = True
    rescue_matches: int = Field(3, ge=1, description="most similar titles per unlinked record")
    rescue_min_score: float = Field(
        60.0, ge=0, le=100, description="rapidfuzz token set ratio of the core titles without the brand")
    rescue_max_block: int = Field(300, ge=2, description="brand/colour/size blocks larger than this are skipped")


class GateSettings(Settings):
    """When a new model may replace the current one."""

    max_negative_flip_rate: float = Field(0.01, ge=0, le=1)
    max_f1_drop: float = Field(0.01, ge=0, le=1)
