"""Results tables: aggregate per-run results over seeds, write results.csv and results.md.

A run row is a flat dict: ``label`` (model or "gru-ode Tsit5/KenCarp4"), ``seed``, ``status`` ("ok" or
"failed"), ``error`` (one line, failed runs) and the metric columns of ``COLUMNS``. Failed runs are kept and
marked, never dropped: a label whose seeds all failed still gets a row saying so.
"""
from __future__ import annotations

import csv
import math
import os
from typing import Iterable, Mapping, Sequence

# (key, markdown header, format) in table order
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("params", "params", "{:,.0f}"),
    ("train_time_s", "train time (s)", "{:.1f}"),
    ("tokens", "tokens", "{:,.0f}"),
    ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("ms_per_token", "ms/token", "{:.2f}"),
    ("best_val_ppl", "best val ppl", "{:.2f}"),
    ("test_ppl", "test ppl", "{:.2f}"),
    ("bleu4", "BLEU-4", "{:.4f}"),
    ("rouge1", "ROUGE-1", "{:.4f}"),
    ("rouge2", "ROUGE-2", "{:.4f}"),
    ("rougeL", "ROUGE-L", "{:.4f}"),
    ("distinct1", "distinct-1", "{:.3f}"),
    ("distinct2", "distinct-2", "{:.3f}"),
    ("self_bleu", "self-BLEU", "{:.3f}"),
    ("bleu_ha", "BLEU-HA", "{:.4f}"),
    ("nfe_fwd_per_token", "NFE/token fwd", "{:.1f}"),
    ("nfe_bwd_per_token", "NFE/token bwd", "{:.1f}"),
)
METRICS = tuple(k for k, _, _ in COLUMNS) + ("bleu_f", "bleu_b")   # the last two in the CSV files only
# Rank columns: the table ranks its rows by the held-out perplexity (lower is better) and by the combined
# generation score BLEU-HA (higher is better), side by side, so the reader sees where the two agree.
RANKS = (("test_ppl", "ppl rank", False), ("bleu_ha", "BLEU-HA rank", True))


def _number(v) -> float | None:
    """A finite float, or None for missing/non-numeric/non-finite values."""
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def mean_spread(values: Iterable) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the finite values, and their count."""
    xs = [x for x in (_number(v) for v in values) if x is not None]
    if not xs:
        return None, None, 0
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return mean, 0.0, 1
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var), len(xs)


def aggregate(runs: Sequence[Mapping]) -> list[dict]:
    """Group run rows by label (first-seen order) and summarise each metric over the successful seeds.

    Returns:
        One dict per label: ``label``, ``seeds`` (all), ``n_ok``, ``n_failed``, ``status`` ("ok",
        "failed" or "partial"), ``errors`` (list of one-line messages), and for each metric ``<key>`` (mean)
        and ``<key>_std``, and ``rank_<key>`` (1 = best) for each key of ``RANKS``.
    """
    groups: dict[str, list[Mapping]] = {}
    for r in runs:
        groups.setdefault(str(r["label"]), []).append(r)
    out = []
    for label, rows in groups.items():
        ok = [r for r in rows if r.get("status") == "ok"]
        failed = [r for r in rows if r.get("status") != "ok"]
        agg: dict = {
            "label": label,
            "seeds": [r.get("seed") for r in rows],
            "n_ok": len(ok),
            "n_failed": len(failed),
            "status": "ok" if not failed else ("failed" if not ok else "partial"),
            "errors": [f"seed {r.get('seed')}: {r.get('error') or 'failed'}" for r in failed],
        }
        for key in METRICS:
            mean, std, _ = mean_spread(r.get(key) for r in ok)
            agg[key], agg[key + "_std"] = mean, std
        out.append(agg)
    for key, _, higher_first in RANKS:
        ranked = sorted((a for a in out if a.get(key) is not None), key=lambda a: a[key], reverse=higher_first)
        place = {id(a): i + 1 for i, a in enumerate(ranked)}
        for a in out:
            a["rank_" + key] = place.get(id(a))
    return out


def write_csv(aggregated: Sequence[Mapping], path: str) -> str:
    """results.csv: one row per label, mean and std columns per metric, status and errors."""
    header = ["label", "status", "n_ok", "n_failed", "seeds", *("rank_" + k for k, _, _ in RANKS)]
    for key in METRICS:
        header += [key, key + "_std"]
    header.append("errors")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for a in aggregated:
            row = [a["label"], a["status"], a["n_ok"], a["n_failed"],
                   " ".join(str(s) for s in a["seeds"]), *(a.get("rank_" + k) or "" for k, _, _ in RANKS)]
            for key in METRICS:
                row += ["" if a.get(key) is None else repr(a[key]),
                        "" if a.get(key + "_std") is None else repr(a[key + "_std"])]
            row.append(" | ".join(a.get("errors", [])))
            w.writerow(row)
    return path


def write_runs_csv(runs: Sequence[Mapping], path: str) -> str:
    """runs.csv: the per-seed rows behind results.csv (failed runs included)."""
    header = ["label", "seed", "status", *METRICS, "error", "run_dir"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    return path


def _cell(a: Mapping, key: str, fmt: str) -> str:
    mean, std = a.get(key), a.get(key + "_std")
    if mean is None:
        return "–"
    text = fmt.format(mean)
    if a.get("n_ok", 0) > 1 and std is not None:
        text += " ± " + fmt.format(std)
    return text


def markdown_table(aggregated: Sequence[Mapping]) -> str:
    """A GitHub markdown table, one row per label; failed labels are marked in the status column."""
    head = ["model", "status", *[h for _, h, _ in RANKS], *[h for _, h, _ in COLUMNS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in aggregated:
        n = a["n_ok"] + a["n_failed"]
        status = {"ok": f"ok ({n})", "partial": f"{a['n_ok']}/{n} ok",
                  "failed": "**FAILED**"}[a["status"]]
        ranks = [str(a.get("rank_" + k) or "–") for k, _, _ in RANKS]
        cells = [a["label"], status, *ranks, *[_cell(a, k, f) for k, _, f in COLUMNS]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(aggregated: Sequence[Mapping], path: str, *, title: str = "Results",
                   notes: Sequence[str] = ()) -> str:
    """results.md: title, the table (mean ± sample std over successful seeds), notes, and failures."""
    parts = [f"# {title}", "", markdown_table(aggregated), ""]
    parts += ["Values are mean ± sample standard deviation over the seeds that finished; "
              "the status column counts them.", ""]
    parts += [f"- {n}" for n in notes]
    errors = [(a["label"], e) for a in aggregated for e in a.get("errors", [])]
    if errors:
        parts += ["", "## Failed runs", ""]
        parts += [f"- **{label}** {e}" for label, e in errors]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts).rstrip() + "\n")
    return path


def _fmt(v) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def generic_markdown(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` with the given columns (numbers to 4 significant digits)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def generic_csv(rows: Sequence[Mapping], path: str, columns: Sequence[str] | None = None) -> str:
    """Write ``rows`` to a CSV (columns: given, else the union of the rows' keys in first-seen order)."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return path
