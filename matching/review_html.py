"""One self-contained HTML page for reviewing pairs: no external assets, works offline.

Rows are rendered here with every value passed through html.escape (titles are untrusted); the
inline script only filters and reorders rows by their numeric/class data attributes, so no data
ever reaches the page as markup or code. A Content-Security-Policy lets only that script
run and nothing load from outside. The page can also collect verdicts and download them as a CSV
that `catalog-match import-reviews` reads.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable

import polars as pl

from matching.explain import TOKEN_PATTERN

_TOKEN = re.compile(f"({TOKEN_PATTERN})")
_SIDE_ROWS = (("title", "title"), ("brand", "brand"), ("colour", "color"), ("size", "size"), ("price", "price"),
              ("model number", "model_number"), ("capacity", "capacity"), ("duplicate group", "group_id"),
              ("variant family", "family_id"))
_CLASSES = ("duplicate", "variant", "distinct", "match")
# Review columns the page lays out itself; any other column (say a flip report's old decision) is
# listed under its pair as name: value.
_LAID_OUT = ("decision", "uncertainty", "same_group", "same_family", "blockers", "reasons", "against",
             "chart_phrases", "chart_features", "chart_contributions", "reviewer_verdict", "reviewer_note")

_CSS = """
:root{font-family:system-ui,sans-serif;font-size:14px;color:#1d2330;background:#f5f6f8}
body{margin:0}header{position:sticky;top:0;background:#fff;border-bottom:1px solid #d5d9e0;padding:.6rem 1rem;z-index:1}
h1{font-size:1.15rem;margin:0 0 .4rem}#controls{display:flex;gap:1.2rem;flex-wrap:wrap;align-items:center}
main{padding:1rem;display:grid;gap:.8rem}[hidden]{display:none!important}
.pair{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:.6rem .9rem;
content-visibility:auto;contain-intrinsic-size:auto 420px}
.pair h2{font-size:1rem;margin:0 0 .3rem;display:flex;gap:.6rem;align-items:baseline;flex-wrap:wrap}
.badge{border-radius:3px;padding:0 .4rem;color:#fff;font-size:.85rem}
.badge.duplicate,.badge.match{background:#2b6cb0}.badge.variant{background:#7b4bb7}.badge.distinct{background:#6b7280}
.muted{color:#5b6472;font-size:.85rem}table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{text-align:left;vertical-align:top;padding:.15rem .4rem;border-bottom:1px solid #eef0f3}
th{width:9rem;font-weight:500;color:#5b6472}td{width:45%;overflow-wrap:anywhere}
mark{background:#ffe08a;padding:0 .1rem;border-radius:2px}
.chart{display:grid;grid-template-columns:minmax(12rem,28rem) 12rem 4rem;gap:.15rem .5rem;align-items:center}
.bar{height:.7rem;border-radius:2px}.bar.for{background:#2f855a}.bar.against{background:#c53030}
.num{font-variant-numeric:tabular-nums;text-align:right}.verdict{display:flex;gap:.8rem;align-items:center;margin-top:.3rem}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var main = document.getElementById("pairs");
  var rows = Array.prototype.slice.call(main.querySelectorAll("article.pair"));
  var cls = document.getElementById("f-class");
  var conf = document.getElementById("f-confidence");
  var confOut = document.getElementById("f-confidence-value");
  var sort = document.getElementById("f-sort");
  var shown = document.getElementById("shown");
  function num(row, key) { return parseFloat(row.getAttribute("data-" + key)); }
  function filter() {
    var wanted = cls.value, most = parseFloat(conf.value), n = 0;
    rows.forEach(function (row) {
      var ok = (wanted === "all" || row.getAttribute("data-decision") === wanted) && num(row, "confidence") <= most + 1e-9;
      if (row.hidden === ok) { row.hidden = !ok; }
      if (ok) { n += 1; }
    });
    confOut.textContent = most.toFixed(2);
    shown.textContent = n + " of " + rows.length + " pairs shown";
  }
  // Moving rows is costly, so they move only when the order really changes.
  function order() {
    var dir = sort.value === "certain-first" ? 1 : -1;
    var current = Array.prototype.slice.call(main.querySelectorAll("article.pair"));
    var sorted = current.slice().sort(function (a, b) {
      return dir * (num(b, "confidence") - num(a, "confidence")) || num(a, "rank") - num(b, "rank");
    });
    if (sorted.every(function (row, i) { return row === current[i]; })) { return; }
    var fragment = document.createDocumentFragment();
    sorted.forEach(function (row) { fragment.appendChild(row); });
    main.appendChild(fragment);
  }
  // Same neutralising as the exported CSV, so a spreadsheet never runs a cell as a formula.
  function csvCell(value) {
    var text = String(value);
    if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }
    return '"' + text.replace(/"/g, '""') + '"';
  }
  function download() {
    var lines = ["left_id,right_id,reviewer_verdict,reviewer_note"];
    rows.forEach(function (row) {
      var picked = row.querySelector("select.verdict-choice").value;
      var note = row.querySelector("input.verdict-note").value;
      if (picked || note) {
        lines.push([row.getAttribute("data-left"), row.getAttribute("data-right"), picked, note].map(csvCell).join(","));
      }
    });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "text/csv"}));
    link.download = "reviews.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
  }
  [cls, conf].forEach(function (el) { el.addEventListener("input", filter); el.addEventListener("change", filter); });
  sort.addEventListener("change", order);
  document.getElementById("download").addEventListener("click", download);
  order();
  filter();
})();
"""
# Only the page's own script may run, even if some value ever escaped escaping.
_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()


def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute; None shows as empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def marked_title(title: str | None, only_here: Iterable[str]) -> str:
    """The title escaped, with the tokens the other record's title lacks wrapped in <mark>."""
    if not title:
        return ""
    differing = set(only_here)
    parts = _TOKEN.split(title)
    return "".join(f"<mark>{esc(p)}</mark>" if i % 2 and p.lower() in differing else esc(p)
                   for i, p in enumerate(parts))


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _chart(phrases: list[str], values: list[float]) -> str:
    """Reasons as horizontal bars scaled to the row's largest contribution."""
    if not phrases:
        return '<p class="muted">no feature moved this decision</p>'
    top = max(abs(v) for v in values) or 1.0
    cells = []
    for phrase, value in zip(phrases, values):
        kind = "for" if value > 0 else "against"
        width = round(100 * abs(value) / top, 1)
        cells.append(
            f'<span>{esc(phrase)}</span><span><span class="bar {kind}" style="display:block;width:{width}%"'
            f' title="{kind} the decision"></span></span><span class="num">{value:+.2f}</span>'
        )
    return f'<div class="chart">{"".join(cells)}</div>'


def _extra_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in _LAID_OUT and not c.startswith(("p_", "left_", "right_"))]


def _pair(row: dict, rank: int, probabilities: list[str], extras: list[str]) -> str:
    decision = row["decision"] if row["decision"] in _CLASSES else "distinct"
    uncertainty = float(row["uncertainty"] or 0.0)
    probs = " · ".join(f"p({esc(c.removeprefix('p_'))}) {_number(row[c])}" for c in probabilities)
    side_rows = []
    for label, key in _SIDE_ROWS:
        left, right = row.get(f"left_{key}"), row.get(f"right_{key}")
        if key == "title":
            left = marked_title(left, row["left_only_tokens"] or [])
            right = marked_title(right, row["right_only_tokens"] or [])
        else:
            left, right = esc(_number(left) if isinstance(left, float) else left), esc(
                _number(right) if isinstance(right, float) else right)
        side_rows.append(f"<tr><th>{esc(label)}</th><td>{left}</td><td>{right}</td></tr>")
    links = [(f"weakest link of their {level} {_number(row.get(f'left_{level}_weakest_link'))}")
             for level, same in (("group", "same_group"), ("family", "same_family"))
             if row.get(same) and row.get(f"left_{level}_weakest_link") is not None]
    group_note = "".join(f" · {link}" for link in links)
    blockers = ", ".join(row.get("blockers") or []) or "none recorded"
    options = "".join(f'<option value="{c}">{c}</option>' for c in ("duplicate", "variant", "distinct"))
    more = " · ".join(f"{c}: {'' if row[c] is None else row[c]}" for c in extras)
    return (
        f'<article class="pair" data-decision="{esc(decision)}" data-uncertainty="{uncertainty:.6f}"'
        f' data-confidence="{1 - uncertainty:.6f}" data-rank="{rank}" data-left="{esc(row["left_id"])}"'
        f' data-right="{esc(row["right_id"])}">'
        f'<h2><span class="badge {esc(decision)}">{esc(row["decision"])}</span>'
        f'<span>{esc(row["left_id"])} ↔ {esc(row["right_id"])}</span>'
        f'<span class="muted">uncertainty {uncertainty:.2f} · {probs}</span></h2>'
        f'<table><thead><tr><th></th><th>{esc(row["left_id"])}</th><th>{esc(row["right_id"])}</th></tr></thead>'
        f'<tbody>{"".join(side_rows)}</tbody></table>'
        f'{_chart(row["chart_phrases"] or [], row["chart_contributions"] or [])}'
        f'<p class="muted">proposed by: {esc(blockers)}{esc(group_note)}</p>'
        f'{f"<p class=muted>{esc(more)}</p>" if more else ""}'
        f'<div class="verdict"><label>verdict <select class="verdict-choice"><option value="">not reviewed</option>'
        f'{options}</select></label><label>note <input class="verdict-note" type="text" size="40"></label></div>'
        "</article>"
    )


def render_review_html(review: pl.DataFrame, heading: str = "Match review") -> str:
    """The review table as one self-contained, escaped HTML page."""
    probabilities = [c for c in review.columns if c.startswith("p_")]
    extras = _extra_columns(review.columns)
    articles = "\n".join(_pair(row, i, probabilities, extras) for i, row in enumerate(review.iter_rows(named=True)))
    decided = set(review["decision"].to_list())
    classes = "".join(f'<option value="{c}">{c}</option>' for c in _CLASSES if c != "match" or c in decided)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src '{_SCRIPT_HASH}'">
<title>{esc(heading)}</title><style>{_CSS}</style></head>
<body><header><h1>{esc(heading)}: {review.height} pairs</h1>
<div id="controls">
<label>class <select id="f-class"><option value="all">all</option>{classes}</select></label>
<label>confidence at most <input id="f-confidence" type="range" min="0" max="1" step="0.05" value="1">
<output id="f-confidence-value">1.00</output></label>
<label>order <select id="f-sort"><option value="uncertain-first">most uncertain first</option>
<option value="certain-first">most certain first</option></select></label>
<span id="shown" class="muted"></span>
<button id="download" type="button">download verdicts CSV</button>
</div></header>
<main id="pairs">
{articles}
</main>
<script>{_SCRIPT}</script>
</body></html>
"""
