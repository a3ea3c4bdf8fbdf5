"""Labels on one scale (issue 29, item 5): per profile, are the datasets normalised to its canonical
reference, and do configurations measured in different sessions agree once normalised?

Reads `data/<profile>/` only (nothing is measured; seconds). For the profile of the repeatability
benchmark, its runs (`benchmarks/repeatability_log.jsonl`, each run a session) are paired with the
dataset rows of the same configurations too. Prints the tables in Markdown and writes them into
`docs/label-scale.md` between its markers (the text around them is kept).

    .venv/bin/python benchmarks/label_scale.py            # every profile in data/
    .venv/bin/python benchmarks/label_scale.py --no-write # print only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "label-scale.md"
REPEATABILITY_LOG = REPO / "benchmarks" / "repeatability_log.jsonl"
BEGIN, END = "<!-- label-scale:begin -->", "<!-- label-scale:end -->"


def repeatability_rows(profile: str, reference: dict | None) -> tuple[pd.DataFrame, list[str]]:
    """The repeatability runs of `profile` as extra rows (kind "run"; latency raw only) and notes on
    runs whose canonical reference or statistic is not the profile's."""
    rows, notes = [], []
    if not REPEATABILITY_LOG.exists():
        return pd.DataFrame(), notes
    for line in REPEATABILITY_LOG.read_text().splitlines():
        run = json.loads(line)
        if run.get("profile") != profile:
            continue
        stat = run["protocol"]["statistic"]
        if reference and not np.isclose(run["canonical_reference_j"], reference["energy_j"], rtol=1e-9):
            notes.append(f"run {run['started_at']}: canonical {run['canonical_reference_j']:.6g} J, "
                         f"reference.json {reference['energy_j']:.6g} J")
        for cid, c in run["configs"].items():
            rows.append({"config_id": cid, "energy_j": c["normalised"][stat], "energy_raw_j": c["raw"][stat],
                         "latency_s": np.nan, "latency_raw_s": c["latency_s"],
                         "speed_index": float(np.median(run["speed_index"])), "kind": "run",
                         "source": f"repeatability@{run['started_at'][:16]}", "measured_at": run["started_at"]})
    return pd.DataFrame(rows), notes


def _pct(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def _factor(lo, hi) -> str:
    if not np.isfinite(lo):
        return "–"
    return f"{lo:.2f}" if np.isclose(lo, hi, rtol=5e-3) else f"{lo:.2f}–{hi:.2f}"


def summary_table(reports: pd.DataFrame) -> str:
    head = ("| profile | reference (canonical) | datasets / rows | rows without speed index | datasets off the "
            "reference | pairs of sources / repeated configs | energy norm: RMS before → after factor (factor) | "
            "energy raw: before → after (factor) | latency norm: before → after (factor) | within-session noise: "
            "round → label (√2 × label) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in reports.to_dict("records"):
        cells = [f"`{r['profile']}`", f"{r['reference_measured_at']} {r['reference_statistic']}",
                 f"{r['datasets']} / {r['rows']}",
                 f"{r['rows_without_speed_index']} ({r['datasets_without_speed_index'] or 'none'})",
                 r["datasets_off_reference"] or "none", f"{r['pairs']} / {r['repeated_configs']}"]
        for col in ("energy_norm", "energy_raw", "latency_norm"):
            cells.append(f"{_pct(r[f'{col}_rms'])} → {_pct(r[f'{col}_rms_after'])} "
                         f"({_factor(r[f'{col}_factor_min'], r[f'{col}_factor_max'])})" if r["pairs"] else "no repeats")
        cells.append(f"{_pct(r['round_noise'])} → {_pct(r['label_noise_est'])} "
                     f"({_pct(np.sqrt(2) * r['label_noise_est'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The three table builders below share a shape (header, separator, a row per record) and nothing else:
# each row formats different columns, so one generic builder would only move the formatting into lambdas.
def checks_table(checks: pd.DataFrame) -> str:
    lines = ["| profile / dataset | rows | measured (UTC) | sessions | speed-index NaN rows | statistic | "
             "canonical used ÷ reference.json | labels recomputed / off (max error) | latency index outside block |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in checks.to_dict("records"):
        rec = r.get("rows_recomputed", np.nan)
        recomputed = "no windows/blocks" if not np.isfinite(rec) or rec == 0 else (
            f"{int(rec)} / {int(r['labels_off'])} ({r['label_max_error']:.1e})")
        ratio = r.get("canonical_ratio", np.nan)
        outside = r.get("latency_index_outside_block", np.nan)
        lines.append(f"| `{r['profile']}` / {r['dataset']} | {r['rows']} | {r['first']} – {r['last'][5:]} | "
                     f"{r['sessions']} | {r['rows_without_speed_index']} | {r['statistic']} | "
                     f"{'–' if not np.isfinite(ratio) else f'{ratio:.6f}'} | {recomputed} | "
                     f"{'–' if not np.isfinite(outside) else int(outside)} |")
    return "\n".join(lines)


def pairs_table(pairs: pd.DataFrame) -> str:
    lines = ["| profile | earlier → later | configs | both normalised | energy norm: factor, RMS before → after | "
             "energy raw: factor, before → after | latency norm | latency raw |",
             "|---|---|---|---|---|---|---|---|"]
    for r in pairs.to_dict("records"):
        cells = []
        for col in ("energy_norm", "energy_raw", "latency_norm", "latency_raw"):
            f = r.get(f"{col}_factor", np.nan)
            cells.append("–" if not np.isfinite(f) else
                         f"{f:.3f}, {_pct(r[f'{col}_rms'])} → {_pct(r[f'{col}_rms_after'])}")
        lines.append(f"| `{r['profile']}` | {r['earlier']} → {r['later']} | {r['configs']} | "
                     f"{'yes' if r['normalised_both'] else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(profiles: list[Path]) -> tuple[str, pd.DataFrame]:
    from nnenergy.measure import scale_check as sc

    reports, checks, pairs, notes = [], [], [], []
    for root in profiles:
        p = sc.load_profile(root)
        extra, run_notes = repeatability_rows(p["profile"], p["reference"])
        notes += [f"`{p['profile']}` {n}" for n in run_notes]
        reports.append(sc.scale_report(root, extra))
        checks.append(sc.dataset_checks(root, p).assign(profile=p["profile"]))
        rows = pd.concat([sc.profile_rows(p), extra], ignore_index=True)
        pairs.append(sc.repeat_pairs(rows).assign(profile=p["profile"]))
    reports = pd.concat(reports, ignore_index=True)
    pairs = pd.concat([x for x in pairs if len(x)], ignore_index=True) if any(len(x) for x in pairs) else pd.DataFrame()
    md = "\n\n".join([
        "### Per profile\n\n" + summary_table(reports),
        "### Per dataset: the canonical reference and the statistic\n\n" + checks_table(pd.concat(checks)),
        "### Per pair of sources measuring the same configurations\n\n"
        + (pairs_table(pairs) if len(pairs) else "none"),
        "Repeatability runs off the profile's reference: " + ("; ".join(notes) if notes else "none") + ".",
    ])
    return md, reports


def write_doc(md: str, path: Path = DOC) -> None:
    """Replace what lies between the markers; the text around them is hand-written and kept."""
    text = path.read_text() if path.exists() else f"# Labels on one scale\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} lacks the markers {BEGIN} … {END}")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{BEGIN}\n<!-- written by benchmarks/label_scale.py -->\n\n{md}\n\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profiles", nargs="*", type=Path,
                    help="profile folders (default: every data/<profile>/ with a reference.json)")
    ap.add_argument("--no-write", action="store_true", help=f"print only; do not update {DOC.relative_to(REPO)}")
    args = ap.parse_args(argv)
    profiles = args.profiles or sorted(p.parent for p in (REPO / "data").glob("*/reference.json"))
    missing = [str(p) for p in profiles if not p.is_dir()]
    if missing:
        print(f"error: no such profile folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    md, _ = run(profiles)
    print(md)
    if not args.no_write:
        write_doc(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
