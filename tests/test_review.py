"""Review packages: the queue, the CSV/Parquet/HTML export, and verdicts imported back as labels."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from features.attributes import extract_attributes
from features.idf import TokenIdf
from features.io import write_json, write_table
from features.pairs import pair_features
from features.records import CatalogError, load_catalog
from matching.cluster import cluster_records
from matching.labels import read_labels, truth_labels
from matching.model import score_pairs, train_matcher
from matching.review import build_review, import_reviews, load_run, select_queue, write_review
from matching.settings import ClusterSettings, MatcherSettings

HOSTILE_TITLE = "<script>alert(1)</script> Desk Lamp"
FORMULA_TITLE = '=HYPERLINK("http://evil.example","click") Mug'
# Families of products: (brand, title stem, model, price, colours, sizes); every colour x size is
# one product, and the first two products of each family are listed twice (duplicates).
FAMILIES = [
    ("Acme", "Runner Shoe", "RS100", 59.99, ["red", "blue", "black"], ["42", "43"]),
    ("Zeta", "Phone X2", "ZX2", 399.0, ["black", "white"], ["64GB", "128GB"]),
    ("Nordic", "Wool Sweater", "NW7", 79.0, ["grey", "green"], ["S", "M", "L"]),
    ("Brewmaster", "Electric Kettle 1.7l", "BK2", 34.5, ["silver", "black"], [""]),
]
SINGLES = [
    ("-77", HOSTILE_TITLE, "Lumos", 25.0),
    ("s2", FORMULA_TITLE, "Cupsy", 7.5),
    ("s3", "Garden Hose 25m Reel", "Hydro", 45.0),
    ("s4", "Cast Iron Skillet 26cm", "Ferro", 39.0),
    ("s5", "Yoga Mat Non Slip", "Zenfit", 22.0),
    ("s6", "Bluetooth Speaker Mini", "Sonix", 29.0),
]


@dataclass
class Run:
    """A small run folder built with the real attribute, feature, model and cluster code."""

    path: Path
    catalog: Path
    model_dir: Path


def catalog_frame() -> pl.DataFrame:
    """The fixture catalog with truth columns (product_id, family_id)."""
    rows = []
    for brand, stem, model, price, colours, sizes in FAMILIES:
        k = 0
        for colour in colours:
            for size in sizes:
                product = f"{model}-{colour}-{size}"
                title = f"{brand} {stem} {model} {colour.title()} {size}".strip()
                rows.append((f"{model}{k}a", title, brand, colour, size, price, model, product, model))
                if k < 2:
                    retitled = f"{brand.upper()} {stem.lower()} - {model[:2]}-{model[2:]} - {colour} - {size}".strip(" -")
                    rows.append((f"{model}{k}b", retitled, brand, None, None, round(price * 1.03, 2), None, product, model))
                k += 1
    for rid, title, brand, price in SINGLES:
        rows.append((rid, title, brand, None, None, price, None, f"P{rid}", f"F{rid}"))
    schema = ["id", "title", "brand", "color", "size", "price", "model_number", "product_id", "family_id"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def all_pairs(attrs: pl.DataFrame) -> pl.DataFrame:
    """Every unordered pair once, left_id < right_id, with the blockers that would propose it."""
    ids = attrs.select("id", "attr_models")
    pairs = ids.join(ids, how="cross", suffix="_r").filter(pl.col("id") < pl.col("id_r"))
    same_model = pl.col("attr_models").list.set_intersection(pl.col("attr_models_r")).list.len() > 0
    return pairs.select(
        pl.col("id").alias("left_id"), pl.col("id_r").alias("right_id"),
        pl.when(same_model).then(pl.lit(["ann", "model"])).otherwise(pl.lit(["ann"])).alias("blockers"),
        pl.lit(None, dtype=pl.Float32).alias("ann_sim"),
    )


def build_run(root: Path, settings: MatcherSettings | None = None) -> Run:
    """Catalog file, trained model and run folder (pairs, features, records, groups, run.json)."""
    # Written as a supplier would, not through csv_safe: the formula title must reach the run as is.
    catalog = root / "catalog.csv"
    catalog_frame().write_csv(catalog)
    attrs = extract_attributes(load_catalog(catalog))
    pairs = all_pairs(attrs)
    feats = pair_features(pairs, attrs, attrs, None, None, TokenIdf.fit(attrs["attr_title"].to_list()))
    labels = truth_labels(feats, attrs, attrs).to_list()
    settings = settings or MatcherSettings(num_boost_round=80, min_data_in_leaf=2, early_stopping_rounds=20)
    matcher = train_matcher(feats, labels, settings)
    model_dir = matcher.save(root / "model")
    scored = score_pairs(matcher, feats)
    clusters = cluster_records(attrs, scored, ClusterSettings())
    display = ["id", "title", "brand", "color", "size", "price", "model_number",
               "attr_colors", "attr_sizes", "attr_models", "attr_capacity"]
    records = clusters.join(attrs.select(display), on="id").select(
        "id",
        pl.format("G{}", "group_key").alias("duplicate_group_id"),
        pl.format("F{}", "family_key").alias("variant_family_id"),
        "confidence", *display[1:],
    )
    links = clusters.select(pl.format("G{}", "group_key").alias("duplicate_group_id"),
                            pl.format("F{}", "family_key").alias("variant_family_id"),
                            "group_weakest_link", "family_weakest_link")
    groups = links.group_by("duplicate_group_id", maintain_order=True).agg(
        pl.col("variant_family_id").first(), pl.len().alias("size"),
        pl.col("group_weakest_link").first().alias("weakest_link"), pl.col("family_weakest_link").first(),
    )
    run = root / "run"
    write_table(groups, run / "groups.parquet")
    write_table(scored, run / "pairs.parquet")
    write_table(feats.drop("blockers", "ann_sim"), run / "features.parquet")
    write_table(records, run / "records.parquet")
    write_json({"model": {"model_dir": str(model_dir)}}, run / "run.json")
    return Run(run, catalog, model_dir)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return build_run(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def package(run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "review"
    write_review(build_review(load_run(run.path), "all", None), out)
    return out


def fill(package: Path, verdicts: dict[int, str], notes: dict[int, str] | None = None) -> Path:
    """Copy of the package's CSV with verdicts (and notes) written into the given data rows (1-based)."""
    frame = pl.read_csv(package / "review.csv", infer_schema_length=0)
    verdict = [verdicts.get(i + 1) for i in range(frame.height)]
    note = [(notes or {}).get(i + 1) for i in range(frame.height)]
    filled = frame.with_columns(pl.Series("reviewer_verdict", verdict, dtype=pl.String),
                                pl.Series("reviewer_note", note, dtype=pl.String))
    path = package / "reviewed.csv"
    filled.write_csv(path)
    return path


def test_queue_is_ordered_by_uncertainty_and_filters_by_class(run: Run) -> None:
    pairs = pl.scan_parquet(run.path / "pairs.parquet")
    queue = select_queue(pairs, "all", None)
    assert queue.height == pairs.collect().height
    assert queue["uncertainty"].is_sorted(descending=True)
    variants = select_queue(pairs, "variants", None)
    assert variants.height > 0 and set(variants["decision"]) == {"variant"}
    duplicates = select_queue(pairs, "duplicates", 3)
    assert duplicates.height == 3 and set(duplicates["decision"]) == {"duplicate"}
    uncertain = select_queue(pairs, "uncertain", None)
    assert (uncertain["uncertainty"] >= 0.5).all()
    assert uncertain.height == pairs.filter(pl.col("uncertainty") >= 0.5).collect().height


def test_review_rows_show_both_records_and_reasons(run: Run) -> None:
    review = build_review(load_run(run.path), "all", 25)
    assert review.height == 25
    scored = pl.read_parquet(run.path / "pairs.parquet")
    top = select_queue(scored.lazy(), "all", 25)
    assert review.select("left_id", "right_id").equals(top.select("left_id", "right_id"))
    records = pl.read_parquet(run.path / "records.parquet").select("id", "title", "duplicate_group_id")
    joined = review.join(records, left_on="left_id", right_on="id")
    assert (joined["left_title"] == joined["title"]).all()
    assert (joined["left_group_id"] == joined["duplicate_group_id"]).all()
    groups = pl.read_parquet(run.path / "groups.parquet")
    linked = review.join(groups, left_on="left_group_id", right_on="duplicate_group_id")
    assert linked.height == review.height
    assert linked.select((pl.col("left_group_weakest_link").eq_missing(pl.col("weakest_link"))).all()).item()
    assert review["left_group_weakest_link"].drop_nulls().len() > 0
    assert review["reviewer_verdict"].null_count() == review.height
    assert review["reviewer_note"].null_count() == review.height
    assert (review["reasons"].str.len_chars() > 0).all()
    # The chart lists the reasons first, then those against the decision.
    first = review.row(0, named=True)
    assert "; ".join(first["chart_phrases"][: len(first["reasons"].split("; "))]) == first["reasons"]


def test_csv_neutralises_formula_cells_and_parquet_keeps_them(package: Path) -> None:
    raw = (package / "review.csv").read_text(encoding="utf-8")
    assert FORMULA_TITLE.replace('"', '""') not in raw.replace("'=", "")
    csv = pl.read_csv(package / "review.csv", infer_schema_length=0)
    titles = pl.concat([csv["left_title"], csv["right_title"]])
    assert titles.str.starts_with("=").sum() == 0
    assert titles.str.starts_with("'=HYPERLINK").sum() > 0
    ids = pl.concat([csv["left_id"], csv["right_id"]])
    assert ids.str.starts_with("-").sum() == 0 and (ids == "'-77").sum() > 0
    parquet = pl.read_parquet(package / "review.parquet")
    assert (pl.concat([parquet["left_title"], parquet["right_title"]]) == FORMULA_TITLE).sum() > 0


def test_html_escapes_untrusted_values(package: Path) -> None:
    page = (package / "review.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    unmarked = page.replace("<mark>", "").replace("</mark>", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Desk Lamp" in unmarked
    # Only the page's own script tag: nothing from the data opens one.
    assert page.count("<script") == 1
    assert "http://" not in page.replace("http://evil.example", "") and "src=" not in page


def test_html_lists_extra_columns_escaped(run: Run) -> None:
    from matching.review_html import render_review_html

    review = build_review(load_run(run.path), "all", 3).with_columns(pl.lit("<b>variant</b>").alias("old_decision"))
    page = render_review_html(review)
    assert page.count("old_decision: &lt;b&gt;variant&lt;/b&gt;") == 3 and "<b>variant" not in page


def test_round_trip_export_fill_import_labels_readable(package: Path, tmp_path: Path) -> None:
    review = pl.read_parquet(package / "review.parquet")
    first, second = review.row(0, named=True), review.row(1, named=True)
    reviewed = fill(package, {1: "Duplicate", 2: " variant ", 4: "DISTINCT"}, {1: "-checked by hand"})
    labels = tmp_path / "labels.csv"
    when = dt.datetime(2026, 11, 21, 10, 30, tzinfo=dt.timezone.utc)
    summary = import_reviews(reviewed, labels, package=package, now=when)
    assert (summary.reviewed, summary.added, summary.replaced) == (3, 3, 0)
    assert summary.blank == review.height - 3
    read = read_labels(labels)
    assert read.height == 3
    assert read.row(0) == (first["left_id"], first["right_id"], "duplicate")
    assert read.row(1) == (second["left_id"], second["right_id"], "variant")
    raw = pl.read_csv(labels, infer_schema_length=0)
    assert raw.columns == ["left_id", "right_id", "label", "reviewed_at", "note"]
    assert raw["reviewed_at"].to_list() == ["2026-11-21T10:30:00+00:00"] * 3
    assert raw["note"][0] == "'-checked by hand"  # neutralised for spreadsheets, undone on import


def test_repeated_reviews_keep_the_latest_whatever_the_pair_order(package: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    row = pl.read_parquet(package / "review.parquet").row(0, named=True)
    write_table(pl.DataFrame({"left_id": [row["right_id"], "x1"], "right_id": [row["left_id"], "x2"],
                              "label": ["distinct", "1"]}), labels)
    summary = import_reviews(fill(package, {1: "duplicate", 3: "variant"}), labels, package=package)
    assert (summary.added, summary.replaced, summary.total) == (1, 1, 3)
    summary = import_reviews(fill(package, {1: "variant"}), labels, package=package)
    assert (summary.added, summary.replaced, summary.total) == (0, 1, 3)
    read = read_labels(labels)
    pair = read.filter(pl.min_horizontal("left_id", "right_id") == min(row["left_id"], row["right_id"]),
                       pl.max_horizontal("left_id", "right_id") == max(row["left_id"], row["right_id"]))
    assert pair["label"].to_list() == ["variant"]
    assert read.filter(pl.col("left_id") == "x1")["label"].to_list() == ["match"]


@pytest.mark.parametrize(("verdicts", "edit", "row", "column", "words"), [
    ({2: "duplicate", 5: "dupe"}, None, 5, "reviewer_verdict", "unknown verdict 'dupe'"),
    ({3: "variant"}, ("left_id", 3, "nope"), 3, "left_id", "unknown id 'nope'"),
    ({4: "distinct"}, ("right_id", 4, "ghost"), 4, "right_id", "unknown id 'ghost'"),
    ({1: "distinct", 2: "Maybe", 6: "later"}, None, 2, "reviewer_verdict",
     "unknown verdict 'Maybe' (use duplicate, variant, distinct) (2 bad rows: 2, 6)"),
])
def test_import_reports_bad_rows_and_changes_nothing(package: Path, tmp_path: Path, verdicts: dict[int, str],
                                                     edit: tuple[str, int, str] | None, row: int, column: str,
                                                     words: str) -> None:
    reviewed = fill(package, verdicts)
    if edit is not None:
        name, at, value = edit
        frame = pl.read_csv(reviewed, infer_schema_length=0)
        frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == at - 1).then(pl.lit(value))
                                   .otherwise(pl.col(name)).alias(name))
        frame.write_csv(reviewed)
    labels = tmp_path / "labels.csv"
    write_table(pl.DataFrame({"left_id": ["x1"], "right_id": ["x2"], "label": ["distinct"]}), labels)
    before = labels.read_bytes()
    with pytest.raises(CatalogError) as err:
        import_reviews(reviewed, labels, package=package)
    assert (err.value.row, err.value.column) == (row, column)
    assert words in str(err.value) and str(reviewed) in str(err.value)
    assert labels.read_bytes() == before


def test_import_rejects_a_pair_not_in_the_package(run: Run, tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    write_review(build_review(load_run(run.path), "all", 20), package)
    review = pl.read_parquet(package / "review.parquet")
    ids = pl.concat([review["left_id"], review["right_id"]]).unique().sort()
    known = set(zip(review["left_id"], review["right_id"])) | set(zip(review["right_id"], review["left_id"]))
    absent = next((a, b) for a in ids for b in ids if a < b and (a, b) not in known)
    reviewed = package / "stranger.csv"
    pl.DataFrame({"left_id": [absent[0]], "right_id": [absent[1]], "reviewer_verdict": ["variant"]}).write_csv(reviewed)
    with pytest.raises(CatalogError, match="is not in the review package") as err:
        import_reviews(reviewed, tmp_path / "labels.csv", package=package)
    assert err.value.row == 1
    assert not (tmp_path / "labels.csv").exists()


def test_export_refuses_to_overwrite_filled_verdicts(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    review = build_review(load_run(run.path), "variants", 5)
    write_review(review, out)
    write_review(review, out)  # an untouched package may be rewritten
    frame = pl.read_csv(out / "review.csv", infer_schema_length=0)
    frame.with_columns(pl.lit("variant").alias("reviewer_verdict")).write_csv(out / "review.csv")
    with pytest.raises(CatalogError, match="already holds 5 reviewer verdicts"):
        write_review(review, out)


def test_run_folder_errors_are_one_line_catalog_errors(run: Run, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="pairs.parquet is missing"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("pairs.parquet", "features.parquet", "records.parquet"):
        (broken / name).write_bytes((run.path / name).read_bytes())
    (broken / "run.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(CatalogError, match="names no model folder"):
        load_run(broken)


def test_cli_explain_and_import_reviews(run: Run, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import review  # noqa: F401  (registers the commands)
    from flows.cli.app import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["explain", str(run.path), "--out", str(out), "--only", "variants", "--limit", "4"])
    assert result.exit_code == 0, result.output
    review = pl.read_parquet(out / "review.parquet")
    assert review.height == 4 and set(review["decision"]) == {"variant"}
    assert (out / "review.html").is_file() and (out / "review.csv").is_file()
    fill(out, {1: "variant", 2: "distinct"}).replace(out / "review.csv")
    labels = tmp_path / "labels.csv"
    result = runner.invoke(app, ["import-reviews", str(out), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert read_labels(labels)["label"].to_list() == ["variant", "distinct"]
    result = runner.invoke(app, ["explain", str(run.path), "--out", str(out), "--only", "sometimes"])
    assert result.exit_code == 2



def test_training_on_imported_reviews_changes_the_model_on_those_pairs(run: Run, package: Path, tmp_path: Path) -> None:
    from blocking.settings import BlockingSettings
    from flows.training import pairs_training_data, train_from_files

    attrs = extract_attributes(load_catalog(run.catalog))
    # Includes the id "-77", which the CSV stores neutralised and read_labels restores.
    pairs = all_pairs(attrs)
    base = tmp_path / "labels.csv"
    write_table(pairs.select("left_id", "right_id", truth_labels(pairs, attrs, attrs)), base)
    # The reviewers decide the kettle colours are separate products, not variants.
    review = pl.read_parquet(package / "review.parquet").with_row_index("row", offset=1)
    kettles = review.filter(pl.col("left_id").str.starts_with("BK2") & pl.col("right_id").str.starts_with("BK2")
                            & (pl.col("left_id").str.slice(0, 4) != pl.col("right_id").str.slice(0, 4)))
    assert kettles.height == 4
    matcher_settings = MatcherSettings(num_boost_round=80, min_data_in_leaf=2, early_stopping_rounds=20)
    blocking_settings = BlockingSettings(cache_dir=tmp_path / "cache")
    before = train_from_files(run.catalog, tmp_path / "before", matcher_settings, blocking_settings, labels=base)
    summary = import_reviews(fill(package, {r: "distinct" for r in kettles["row"]}), base, package=package)
    assert (summary.reviewed, summary.replaced, summary.added) == (4, 4, 0)
    after = train_from_files(run.catalog, tmp_path / "after", matcher_settings, blocking_settings, labels=base)
    reviewed = read_labels(base).join(kettles.select("left_id", "right_id"), on=["left_id", "right_id"], how="semi")
    assert reviewed["label"].to_list() == ["distinct"] * 4
    prepared, _ = pairs_training_data(reviewed, load_catalog(run.catalog), blocking_settings)
    distinct = list(before.classes).index("distinct")
    p_before = before.predict_proba(prepared.features)[:, distinct]
    p_after = after.predict_proba(prepared.features)[:, distinct]
    assert p_after.mean() > p_before.mean() + 0.2
    assert set(before.decide(before.predict_proba(prepared.features))) == {"variant"}
    assert set(after.decide(after.predict_proba(prepared.features))) == {"distinct"}


def test_link_run_reviews_name_catalog_ids(run: Run, tmp_path: Path) -> None:
    """A link run namespaces record and pair ids by source; the review and its labels use catalog ids."""
    link = tmp_path / "link"
    pairs = pl.read_parquet(run.path / "pairs.parquet")
    records = pl.read_parquet(run.path / "records.parquet")
    write_table(pairs.with_columns((pl.lit(f"{side}:") + pl.col(f"{side}_id")).alias(f"{side}_id")
                                   for side in ("left", "right")), link / "pairs.parquet")
    write_table(pl.concat([records.with_columns(pl.col("id").alias("source_id"), pl.lit(src).alias("source"),
                                                (pl.lit(f"{src}:") + pl.col("id")).alias("id")) for src in ("left", "right")]),
                link / "records.parquet")
    for name in ("features.parquet", "groups.parquet", "run.json"):
        (link / name).write_bytes((run.path / name).read_bytes())
    linked = build_review(load_run(link), "all", 30)
    plain = build_review(load_run(run.path), "all", 30)
    assert linked.equals(plain)
    package = tmp_path / "pkg"
    write_review(linked, package)
    labels = tmp_path / "labels.csv"
    import_reviews(fill(package, {1: "duplicate"}), labels, package=package)
    assert read_labels(labels).row(0) == (plain["left_id"][0], plain["right_id"][0], "duplicate")


def test_an_empty_queue_still_makes_a_package(run: Run, tmp_path: Path) -> None:
    review = build_review(load_run(run.path), "all", 0)
    assert review.height == 0 and "reviewer_verdict" in review.columns
    paths = write_review(review, tmp_path / "empty")
    assert "0 pairs" in paths["html"].read_text(encoding="utf-8")
    summary = import_reviews(tmp_path / "empty", tmp_path / "labels.csv")
    assert (summary.reviewed, summary.total) == (0, 0)
    assert not (tmp_path / "labels.csv").exists()  # nothing reviewed, nothing written
