"""Two-hop pairs: second-round candidates reached over strong scored links."""

from __future__ import annotations

import polars as pl

from matching.expand import BLOCKER, two_hop_pairs
from matching.settings import ExpandSettings


def scored(rows: list[tuple[str, str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["left_id", "right_id", "p_duplicate", "p_variant"], orient="row")


def keys(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return set(frame.select("left_id", "right_id").iter_rows())


def test_pairs_two_strong_links_apart_that_were_not_scored():
    links = scored([("a", "b", 0.1, 0.8), ("b", "c", 0.7, 0.1), ("c", "d", 0.0, 0.2), ("a", "c", 0.0, 0.05),
                    ("d", "e", 0.5, 0.4)])
    out = two_hop_pairs(links, ExpandSettings())
    # a-b-c is already scored (a, c); c-d is weak, so d reaches nobody through c; e's only link is d.
    assert keys(out) == set()
    links = links.filter(~((pl.col("left_id") == "a") & (pl.col("right_id") == "c")))
    out = two_hop_pairs(links, ExpandSettings())
    assert keys(out) == {("a", "c")}
    assert out["blockers"].to_list() == [[BLOCKER]] and out["ann_sim"].is_null().all()


def test_threshold_and_partner_cap_bound_the_pairs():
    # A hub strongly linked to six records: all 15 pairs among them, or only its 3 strongest partners'.
    hub = scored([("h", f"r{i}", 0.5 + i / 100, 0.1) for i in range(6)])
    assert len(two_hop_pairs(hub, ExpandSettings())) == 15
    capped = two_hop_pairs(hub, ExpandSettings(partners=3))
    assert keys(capped) == {("r3", "r4"), ("r3", "r5"), ("r4", "r5")}
    # Link strengths are 0.60 ... 0.65: above all of them nothing hops; at 0.625 only r3, r4 and r5 do.
    assert two_hop_pairs(hub, ExpandSettings(min_probability=0.66)).is_empty()
    assert keys(two_hop_pairs(hub, ExpandSettings(min_probability=0.625))) == keys(capped)


def test_result_does_not_depend_on_row_order():
    links = scored([("a", "b", 0.6, 0.1), ("b", "c", 0.6, 0.1), ("c", "d", 0.6, 0.1), ("b", "d", 0.6, 0.2),
                    ("x", "b", 0.6, 0.1)])
    settings = ExpandSettings(partners=2)
    assert two_hop_pairs(links, settings).equals(two_hop_pairs(links.reverse(), settings))


def test_training_data_adds_labelled_two_hop_pairs_scored_out_of_fold():
    from blocking.settings import BlockingSettings
    from features.generate import generate_catalog
    from flows.training import catalog_training_data
    from matching.settings import MatcherSettings

    records = generate_catalog(400, seed=3)
    blocking = BlockingSettings(cache=False, backend="static")
    fast = MatcherSettings(num_boost_round=40, seed=0)
    plain, plain_y = catalog_training_data(records, blocking, fast, ExpandSettings(enabled=False))
    both, y = catalog_training_data(records, blocking, fast, ExpandSettings())
    hop = both.features.filter(pl.col("blockers").list.contains(BLOCKER))
    assert both.features.height == plain.features.height + hop.height and len(y) == both.features.height
    assert hop.height > 0 and both.features.head(plain.features.height).equals(plain.features)
    assert keys(hop).isdisjoint(keys(plain.features))
    # Two-hop pairs are true pairs more often than blocking's candidates are; labels come from the truth.
    hop_y = y[plain.features.height:]
    assert (hop_y != "distinct").mean() > (plain_y != "distinct").mean() and (plain_y == y[: len(plain_y)]).all()
