"""One figure style for every notebook (seaborn on matplotlib), saved next to the tables."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def bars_with_ci(
    df, x: str, y: str, hue: str, lo: str, hi: str, ax=None, refs: dict | None = None, title: str = ""
):
    """Grouped bars of `y` with [lo, hi] interval whiskers; `refs` draws per-x reference ticks (e.g.
    chance)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 1.4 * df[x].nunique() + 2), 4))
    xs, hs = list(dict.fromkeys(df[x])), list(dict.fromkeys(df[hue]))
    width = 0.8 / len(hs)
    pal = sns.color_palette("deep", len(hs))
    for j, h in enumerate(hs):
        sub = df[df[hue] == h].set_index(x).reindex(xs)
        pos = [i - 0.4 + width * (j + 0.5) for i in range(len(xs))]
        ax.bar(pos, sub[y], width, label=str(h), color=pal[j])
        ax.errorbar(
            pos,
            sub[y],
            yerr=[sub[y] - sub[lo], sub[hi] - sub[y]],
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1,
        )
    for name, vals in (refs or {}).items():
        for i, xv in enumerate(xs):
            if xv in vals:
                ax.hlines(
                    vals[xv],
                    i - 0.45,
                    i + 0.45,
                    colors="gray",
                    linestyles="--",
                    lw=1.2,
                    label=name if i == 0 else None,
                )
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs, rotation=15)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def ablation_figure(summary, x_label: str):
    """One panel per ablation group (notebooks 13, 22): accuracy per setting with its interval, a line per
    method."""
    gs = list(dict.fromkeys(summary.group))
    fig, axes = plt.subplots(1, len(gs), figsize=(3.2 * len(gs), 3.6), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], gs):
        s = summary[summary.group == g]
        for m, sm in s.groupby("method", sort=False):
            yerr = [sm.acc_mean - sm.acc_lo, sm.acc_hi - sm.acc_mean]
            ax.errorbar(sm.setting, sm.acc_mean, yerr=yerr, marker="o", capsize=3, label=m)
        ax.set_title(g)
        ax.tick_params(axis="x", rotation=45)
    axes[0][0].set_ylabel(x_label)
    axes[0][-1].legend(fontsize=8)
    return fig
