"""Typed settings for the matcher, the clustering and the model promotion gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.settings import Settings


class MatcherSettings(Settings):
    """How the LightGBM matcher is trained."""

    mode: Literal["multiclass", "binary"] = "multiclass"
    seed: int = 0
    num_boost_round: int = Field(600, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_data_in_leaf: int = Field(20, ge=1)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    early_stopping_rounds: int = Field(50, ge=1)
    valid_fraction: float = Field(0.2, gt=0, lt=1)
    class_weight: Literal["balanced", "none"] = "balanced"


class ClusterSettings(Settings):
    """Thresholds of the two-level clustering."""

    duplicate_threshold: float = Field(0.5, ge=0, le=1)
    family_threshold: float = Field(0.5, ge=0, le=1)
    weakest_link_floor: float = Field(0.3, ge=0, le=1)
    cross_brand_threshold: float = Field(0.97, ge=0, le=1)


class GateSettings(Settings):
    """When a new model may replace the current one."""

    max_negative_flip_rate: float = Field(0.01, ge=0, le=1)
    max_f1_drop: float = Field(0.01, ge=0, le=1)
