"""B-cubed precision, recall and F1 of a predicted clustering against the true one."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def _labels(name: str) -> pl.Expr:
    """Cluster labels as strings; a null label puts its record in a cluster of its own."""
    return (
        pl.when(pl.col(name).is_null())
        .then(pl.lit("\x00") + pl.int_range(pl.len()).cast(pl.String))
        .otherwise(pl.lit("\x01") + pl.col(name).cast(pl.String))
    )


def bcubed(predicted: pl.Series | Sequence, truth: pl.Series | Sequence) -> dict[str, float]:
    """Return bcubed_precision, bcubed_recall and bcubed_f1 of row-aligned cluster labels.

    Per record, precision is the share of its predicted cluster that truly belongs with it and recall
    the share of its true cluster that it was predicted with; both are averaged over records.
    """
    pred, true = pl.Series(predicted), pl.Series(truth)
    if pred.len() != true.len():
        raise ValueError(f"predicted has {pred.len()} labels but truth has {true.len()}")
    if pred.len() == 0:
        return {"bcubed_precision": 0.0, "bcubed_recall": 0.0, "bcubed_f1": 0.0}
    frame = pl.DataFrame({"p": pred, "t": true}).select(_labels("p").alias("p"), _labels("t").alias("t"))
    # Every record in a (predicted, true) cell sees the same cell size, so sum cell-wise.
    cells = frame.group_by("p", "t").len("both").with_columns(
        pl.col("both").sum().over("p").alias("pred_size"),
        pl.col("both").sum().over("t").alias("true_size"),
    )
    totals = cells.select(
        (pl.col("both") ** 2 / pl.col("pred_size")).sum().alias("p"),
        (pl.col("both") ** 2 / pl.col("true_size")).sum().alias("r"),
    ).row(0)
    precision, recall = totals[0] / pred.len(), totals[1] / pred.len()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"bcubed_precision": round(precision, 6), "bcubed_recall": round(recall, 6), "bcubed_f1": round(f1, 6)}
