"""Plots the dashboard panels of a test call (scripts/metrics-picture.mjs): one small chart per
panel, every series of it, seconds since the call began on the x axis.
    plot_panels.py panels.json out.png
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, out: str) -> None:
    data = json.load(open(src))
    panels = [p for p in data["panels"] if p["series"]]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 2.6), squeeze=False)
    for ax, p in zip(axes.flat, panels):
        for s in p["series"][:8]:
            xs = [t for t, _ in s["points"]]
            ys = [v for _, v in s["points"]]
            ax.plot(xs, ys, label=s["name"][:40], linewidth=1)
        if data.get("lossFrom") is not None:
            ax.axvline(data["lossFrom"], color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(f'{p["title"]}' + (f' ({p["unit"]})' if p["unit"] else ""), fontsize=8)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Atome dashboard panels over a test call (x: seconds since the call began; dotted: 5% upstream loss on)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
