"""STPN's margin over its single-frame baseline across seeds: every seed's numbers, the mean and
the range of the margin (a claim about STPN's benefit is a margin over seeds, never one run)."""
from __future__ import annotations

from pathlib import Path


def margin_summary(reports: dict[int, dict], keys: list[str], against: str = "baseline") -> dict:
    """reports: seed -> a demo report ({'stpn': {key: value}, 'baseline': {key: value}}, values
    as fractions). Returns, per key, the per-seed values and margins in points (x100) and the
    margin's mean, min and max; ``against``: the report's other model (``static`` for the
    static-prompt control; the rows' ``baseline`` is then that model)."""
    if not reports:
        raise ValueError("no seed reports to summarise")
    out = {}
    for key in keys:
        rows = {}
        for seed, report in sorted(reports.items()):
            if against not in report:
                raise ValueError(f"seed {seed}: the report has no {against!r} model")
            s, b = report["stpn"].get(key), report[against].get(key)
            if s is None or b is None:
                raise ValueError(f"seed {seed}: the report has no {key!r} for both models")
            rows[seed] = {"stpn": 100 * s, "baseline": 100 * b, "margin": 100 * (s - b)}
        margins = [r["margin"] for r in rows.values()]
        out[key] = {"per_seed": rows, "mean": sum(margins) / len(margins), "min": min(margins), "max": max(margins),
                    "all_positive": all(m > 0 for m in margins)}
    return out


def strip_plot(summary: dict, path: str | Path, title: str = "STPN - single frame, per seed") -> Path:
    """One column per metric: each seed's margin as a dot, the mean as a bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(summary), 3.4), dpi=120)
    for i, (key, s) in enumerate(summary.items()):
        margins = [r["margin"] for r in s["per_seed"].values()]
        ax.scatter([i] * len(margins), margins, color="#1f77b4", zorder=3)
        for seed, r in s["per_seed"].items():
            ax.annotate(str(seed), (i, r["margin"]), xytext=(5, -3), textcoords="offset points", fontsize=7)
        ax.hlines(s["mean"], i - 0.25, i + 0.25, color="black", label="mean" if i == 0 else None)
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xticks(range(len(summary)), list(summary))
    ax.set_xlim(-0.6, len(summary) - 0.4)
    ax.set_ylabel("margin (points)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
