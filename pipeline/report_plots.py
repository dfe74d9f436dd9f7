"""The report's figures, drawn with matplotlib into PNG files."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_DPI = 90


def _save(fig, path: str) -> None:
    """A PNG, whole or not at all (written beside, then renamed)."""
    fig.tight_layout()
    fig.savefig(f"{path}.partial", dpi=_DPI, format="png")
    plt.close(fig)
    os.replace(f"{path}.partial", path)


def plot_curves(histories: dict[str, list[dict[str, float]]], title: str, path: str) -> None:
    """Accuracy and loss per epoch, the phases one after the other, each boundary marked
    and each phase named; an autoencoder's history has the loss alone."""
    metrics = [metric for metric in ("accuracy", "loss")
               if any(metric in row for rows in histories.values() for row in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    axes = axes[0]
    offset = 0
    for phase, rows in histories.items():
        epochs = [offset + i + 1 for i in range(len(rows))]
        for ax, metric in zip(axes, metrics):
            ax.plot(epochs, [r.get(metric) for r in rows], label=f"{phase} train")
            ax.plot(epochs, [r.get(f"val_{metric}") for r in rows], "--", label=f"{phase} eval")
            if offset:
                ax.axvline(offset + 0.5, color="black", lw=1, ls=":")
            ax.text(offset + 0.7, 1.0, phase, transform=ax.get_xaxis_transform(),
                    va="bottom", fontsize=8)
        offset += len(rows)
    for ax, metric in zip(axes, metrics):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def plot_confusion(counts: list[list[int]], class_names: list[str], title: str,
                   path: str) -> None:
    """A heatmap of counts[actual][predicted] with the counts written in."""
    size = max(3.5, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    peak = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > peak / 2 else "black")
    ax.set_title(title)
    _save(fig, path)


def plot_timeline(timeline: list[dict[str, Any]], path: str) -> None:
    """One bar per component from its start to its end; components taken from the cache
    are grey and hatched."""
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(timeline) + 1.2))
    for row, item in enumerate(timeline):
        cached = item["state"] == "cached"
        ax.barh(row, max(item["seconds"], 0.2), left=item["start"],
                color="lightgrey" if cached else "tab:blue", hatch="//" if cached else None,
                edgecolor="grey")
        ax.text(item["start"] + max(item["seconds"], 0.2) + 0.5, row,
                f"{item['seconds']:.1f} s{' (cached)' if cached else ''}", va="center",
                fontsize=7)
    ax.set_yticks(range(len(timeline)), [item["component"] for item in timeline], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
