"""Expansion rounds: pairs two strong scored links apart, and the rescue of records with no strong link."""

from __future__ import annotations

import polars as pl

from features.attributes import extract_attributes
from features.records import conform
from matching.expand import RESCUE, TWO_HOP, rescue_pairs, round_pairs, two_hop_pairs
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
    assert out["blockers"].to_list() == [[TWO_HOP]] and out["ann_sim"].is_null().all()


def test_threshold_and_partner_cap_bound_the_pairs():
    # A hub strongly linked to six records: all 15 pairs among them, or only its 3 strongest partners'.
    hub = scored([("h", f"r{i}", 0.5 + i / 100, 0.1) for i in range(6)])
    assert len(two_hop_pairs(hub, ExpandSettings())) == 15
    capped = two_hop_pairs(hub, ExpandSettings(partners=3))
    assert keys(capped) == {("r3", "r4"), ("r3", "r5"), ("r4", "r5")}
    # Link strengths are 0.60 ... 0.65: above all of them nothing hops; at 0.625 only r3, r4 and r5 do.
    assert two_hop_pairs(hub, ExpandSettings(min_probability=0.66)).is_empty()
    assert keys(two_hop_pairs(hub, ExpandSettings(min_probability=0.625))) == keys(capped)


def test_equally_strong_partners_are_capped_in_id_order():
    # Ids listed out of order, all links equally strong: the 2 partners kept are the 2 smallest ids.
    hub = scored([("m", r, 0.6, 0.1) for r in ("q", "b", "z", "a")] + [("c", "m", 0.6, 0.1)])
    assert keys(two_hop_pairs(hub, ExpandSettings(partners=2))) == {("a", "b")}


def test_result_does_not_depend_on_row_order():
    links = scored([("a", "b", 0.6, 0.1), ("b", "c", 0.6, 0.1), ("c", "d", 0.6, 0.1), ("b", "d", 0.6, 0.2),
                    ("x", "b", 0.6, 0.1)])
    settings = ExpandSettings(partners=2)
    assert two_hop_pairs(links, settings).equals(two_hop_pairs(links.reverse(), settings))


PHONES = [
    ("w1", "Wynen Co Astra 6 Ultra 256GB Smartphone White", "Wynen Co"),
    ("w2", "Wynen Co smrtphn Astra 6 Ultra 256gb white", "Wynen Co"),
    ("w3", "Astra 6 Ultra Cell Phone 256GB White by Wynen Co", None),
    ("w4", "Wynen Co Astra 6 Ultra 256GB Smartphone Black", "Wynen Co"),
    ("w5", "Wynen Co Travel Adapter White", "Wynen Co"),
    ("o1", "Olvum Astra 6 Ultra 256GB Smartphone White", "Olvum"),
]


def phones() -> pl.DataFrame:
    return extract_attributes(conform(pl.DataFrame(PHONES, schema=["id", "title", "brand"], orient="row")))


def test_records_without_a_strong_link_are_paired_with_their_likeliest_duplicates():
    # w1 and w4 are linked (colour variants); w2, w3, w5 and o1 have no strong link.
    links = scored([("w1", "w4", 0.1, 0.9), ("o1", "w1", 0.0, 0.2)])
    out = rescue_pairs(links, phones(), ExpandSettings())
    # Same brand (w3's named in its title), colour and size: w1, w2, w3; w5 shares them but not its title;
    # o1 is another brand's and w4 another colour's; o1-w1 is scored already.
    assert keys(out) == {("w1", "w2"), ("w1", "w3"), ("w2", "w3")}
    assert out["blockers"].to_list() == [[RESCUE]] * 3 and out["ann_sim"].is_null().all()
    # Each unlinked record keeps its best matches only; a linked record is no query, only a partner.
    one = keys(rescue_pairs(links, phones(), ExpandSettings(rescue_matches=1)))
    assert one <= keys(out) and 0 < len(one) <= 2
    # Linked w2 and w3 ask for nothing but are found by w1, which is unlinked now.
    other = scored([("w2", "w3", 0.6, 0.3)])
    assert keys(rescue_pairs(other, phones(), ExpandSettings())) == {("w1", "w2"), ("w1", "w3")}
    assert rescue_pairs(scored([("w1", "w2", 0.9, 0), ("w2", "w3", 0.9, 0)]), phones(), ExpandSettings()).is_empty()
    assert rescue_pairs(links, phones(), ExpandSettings(rescue_max_block=3)).is_empty()
    assert rescue_pairs(links, phones(), ExpandSettings(rescue_min_score=100)).is_empty()


def test_a_round_takes_the_two_hop_pairs_and_the_rescue_pairs():
    links = scored([("w1", "w4", 0.1, 0.9), ("w4", "w2", 0.1, 0.9)])
    out = round_pairs(links, phones(), ExpandSettings(), rescue=True)
    # w1 and w2 are two hops apart over w4; w3 is unlinked and finds both (w1 and w2 ask for nothing).
    assert dict(zip(zip(out["left_id"], out["right_id"]), out["blockers"].to_list())) == {
        ("w1", "w2"): [TWO_HOP], ("w1", "w3"): [RESCUE], ("w2", "w3"): [RESCUE],
    }
    assert round_pairs(links, phones(), ExpandSettings(), rescue=False)["blockers"].to_list() == [[TWO_HOP]]
    assert round_pairs(links, phones(), ExpandSettings(rescue=False), rescue=True).height == 1


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
    hop = both.features.filter(pl.col("blockers").list.contains(TWO_HOP))
    assert both.features.height == plain.features.height + hop.height and len(y) == both.features.height
    assert hop.height > 0 and both.features.head(plain.features.height).equals(plain.features)
    assert keys(hop).isdisjoint(keys(plain.features))
    # Two-hop pairs are true pairs more often than blocking's candidates are; labels come from the truth.
    hop_y = y[plain.features.height:]
    assert (hop_y != "distinct").mean() > (plain_y != "distinct").mean() and (plain_y == y[: len(plain_y)]).all()
