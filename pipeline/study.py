"""`tfx-transfer study`: how much transfer buys at each label budget, on the user's own config.

A study runs the config's pipeline once per cell of a grid: total target labels (train +
eval) × target seeds, optionally × `reuse_layers` × `unfreeze`. Cells differ only on the
target side (`target_seed`, the label budgets, the transfer knobs), so the source data and
pretraining stay cached from the first cell on. Each cell pushes to its own serving dir
under the study, so no cell is judged against another's model and the user's serving dir is
never touched. A finished cell is written to `cells/<key>.json` at once; a study started
again with the same arguments skips those, so a killed study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from pipeline.config import ConfigError, PipelineConfig, check_datasets, load_config

DEFAULT_BUDGETS = (20, 50, 100, 200, 500, 1000)
DEFAULT_SEEDS = (1, 2, 3)
# Of each total budget, this share (at least one image per class) is the eval split, which
# early stopping and the learning-rate schedule watch; the rest trains.
DEFAULT_EVAL_SHARE = 0.2


@dataclass(frozen=True)
class Cell:
    """One pipeline run of a study."""

    budget: int  # labelled target images in all: train + eval
    seed: int
    reuse_layers: str = "all"
    unfreeze: str = "all"

    @property
    def key(self) -> str:
        return f"b{self.budget}-s{self.seed}-r{self.reuse_layers}-u{self.unfreeze}"

    @property
    def variant(self) -> str:
        """The transfer knobs of the cell, as the study's table and plot name them."""
        return f"reuse {self.reuse_layers}, unfreeze {self.unfreeze}"


@dataclass(frozen=True)
class Grid:
    """What a study varies."""

    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    reuse_layers: tuple[str, ...] = ("all",)
    unfreeze: tuple[str, ...] = ("all",)
    eval_share: float = DEFAULT_EVAL_SHARE

    def cells(self) -> list[Cell]:
        return [Cell(*values) for values in itertools.product(
            self.budgets, self.seeds, self.reuse_layers, self.unfreeze)]


def split_budget(total: int, n_classes: int, eval_share: float) -> tuple[int, int]:
    """(train, eval) labelled images of a total budget: eval gets `eval_share` of it, and each
    split at least as many images as there are classes (the stratified sample then gives
    each class one, unless the classes are very unequal: the label checks then fail the run,
    naming the class)."""
    eval_ = max(n_classes, round(total * eval_share))
    if total - eval_ < n_classes:
        raise ConfigError(f"study budget {total}: too few labels for {n_classes} classes in "
                          f"both train and eval (at least {2 * n_classes})")
    return total - eval_, eval_


def _knob(value: str) -> str:
    return value if value == "all" else str(int(value))


def cell_overrides(cell: Cell, n_classes: int, eval_share: float, study_dir: str) -> list[str]:
    """The `--set` overrides that make the config run `cell`."""
    train, eval_ = split_budget(cell.budget, n_classes, eval_share)
    return [f"target.label_budget={train}", f"target.eval_label_budget={eval_}",
            f"target_seed={cell.seed}", f"model.reuse_layers={_knob(cell.reuse_layers)}",
            f"training.fine_tune.unfreeze={_knob(cell.unfreeze)}",
            f"serving_dir={os.path.join(study_dir, 'serving', cell.key)}"]


def study_id(config_path: str, overrides: Sequence[str], grid: Grid) -> str:
    """The same config file, overrides and grid give the same id: rerunning resumes."""
    text = json.dumps([Path(config_path).read_text(encoding="utf-8"), list(overrides),
                       asdict(grid)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cell_configs(config_path: str, overrides: Sequence[str], grid: Grid,
                 study_dir: str) -> dict[Cell, PipelineConfig]:
    """Every cell's config, all checked before the first runs (a budget the data can't give
    fails here, naming the key)."""
    from pipeline.pipeline import label_names

    base = load_config(config_path, list(overrides))
    n_classes = len(label_names(base.target))
    configs = {}
    checked = set()  # cells of one budget share their datasets: each is read once
    for cell in grid.cells():
        config = load_config(config_path, [*overrides, *cell_overrides(
            cell, n_classes, grid.eval_share, study_dir)])
        datasets = (config.source and config.source.model_dump_json(),
                    config.target.model_dump_json())
        if datasets not in checked:
            check_datasets(config)
            checked.add(datasets)
        configs[cell] = config
    return configs


def cell_result(config: PipelineConfig, cell: Cell, seconds: float) -> dict[str, Any]:
    """What a study keeps of a cell's run: both test accuracies and the labels counted."""
    from pipeline.pipeline import label_names
    from pipeline.report import build_report

    report = build_report(config.metadata_path, label_names(config.target), images=False)
    metrics = report["metrics"]
    return {**asdict(cell), "config": config_fingerprint(config), "run_id": report["run_id"],
            "seconds": round(seconds, 1),
            "transfer_accuracy": metrics["transfer"]["accuracy"],
            "scratch_accuracy": metrics["scratch"]["accuracy"],
            "blessed": report["blessed"], "labels": report["labels"]}


def config_fingerprint(config: PipelineConfig) -> str:
    """Equal for equal configs: a finished cell is reused only for the config it ran."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def _write_json(path: Path, data: Any) -> None:
    """Whole or not at all: a kill mid-write leaves no half cell to be mistaken for done."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(partial, path)


def finished_cells(study_dir: Path) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((study_dir / "cells").glob("*.json"))}


def run_study(configs: dict[Cell, PipelineConfig], study_dir: Path,
              run_cell: Callable[[PipelineConfig], None], out: TextIO) -> list[dict[str, Any]]:
    """Run the cells not finished yet, one after the other; returns every cell's result."""
    (study_dir / "cells").mkdir(parents=True, exist_ok=True)
    finished = finished_cells(study_dir)
    done = {cell.key: finished[cell.key] for cell, config in configs.items()
            if finished.get(cell.key, {}).get("config") == config_fingerprint(config)}
    stale = sum(cell.key in finished and cell.key not in done for cell in configs)
    todo = [cell for cell in configs if cell.key not in done]
    out.write(f"study {study_dir}: {len(configs)} cells, {len(done)} finished earlier"
              + (f", {stale} rerun as their config changed" if stale else "")
              + f", {len(todo)} to run\n")
    for number, cell in enumerate(todo, start=1):
        out.write(f"[{number}/{len(todo)}] {cell.budget} labels, seed {cell.seed}, "
                  f"{cell.variant} ...\n")
        out.flush()
        started = time.monotonic()
        run_cell(configs[cell])
        result = cell_result(configs[cell], cell, time.monotonic() - started)
        _write_json(study_dir / "cells" / f"{cell.key}.json", result)
        done[cell.key] = result
        out.write(f"    transfer {result['transfer_accuracy']:.2%}, scratch "
                  f"{result['scratch_accuracy']:.2%} ({result['seconds']:.0f} s)\n")
        write_study_report([done[c.key] for c in configs if c.key in done], study_dir)
    return [done[cell.key] for cell in configs]


def _mean_std(values: list[float]) -> dict[str, float]:
    # Population std over seeds, as every table of docs/benchmarks.md.
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}


def summarize(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per budget and variant: mean ± std over seeds, and the error ratio (scratch's
    mean test error over transfer's: above 1, transfer helps)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for result in results:
        cell = Cell(result["budget"], result["seed"], result["reuse_layers"],
                    result["unfreeze"])
        groups.setdefault((cell.variant, cell.budget), []).append(result)
    rows = []
    for (variant, budget), members in sorted(groups.items(), key=lambda item: item[0]):
        transfer = _mean_std([m["transfer_accuracy"] for m in members])
        scratch = _mean_std([m["scratch_accuracy"] for m in members])
        transfer_error = 1 - transfer["mean"]
        rows.append({"variant": variant, "budget": budget,
                     "train_labels": members[0]["labels"]["transfer"]["train"],
                     "eval_labels": members[0]["labels"]["transfer"]["eval"],
                     "test_images": members[0]["labels"]["test"],
                     "seeds": sorted(m["seed"] for m in members),
                     "transfer": transfer, "scratch": scratch,
                     "error_ratio": (1 - scratch["mean"]) / transfer_error
                     if transfer_error > 0 else None,
                     "blessed": sum(bool(m["blessed"]) for m in members)})
    return rows


def meeting_budget(rows: list[dict[str, Any]], variant: str) -> int | None:
    """The smallest budget from which scratch's mean accuracy reaches transfer's, for good:
    None if transfer stays ahead at every budget studied."""
    budgets = [row for row in rows if row["variant"] == variant]
    meets = None
    for row in sorted(budgets, key=lambda row: row["budget"], reverse=True):
        if row["scratch"]["mean"] < row["transfer"]["mean"]:
            break
        meets = row["budget"]
    return meets


def _percent(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.2%} ± {stats['std']:.2%}"


def table(rows: list[dict[str, Any]]) -> str:
    """The study as a Markdown table."""
    lines = ["| variant | labels (train + eval) | test images | transfer | scratch | "
             "error ratio | blessed | seeds |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row['error_ratio']:.2f}" if row["error_ratio"] is not None else "∞"
        lines.append(
            f"| {row['variant']} | {row['budget']} ({row['train_labels']} + "
            f"{row['eval_labels']}) | {row['test_images']} | {_percent(row['transfer'])} | "
            f"{_percent(row['scratch'])} | {ratio} | {row['blessed']}/{len(row['seeds'])} | "
            f"{', '.join(map(str, row['seeds']))} |")
    return "\n".join(lines)


def plot_learning_curves(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Test accuracy against labelled target images, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    variants = sorted({row["variant"] for row in rows})
    for variant in variants:
        members = sorted((row for row in rows if row["variant"] == variant),
                         key=lambda row: row["budget"])
        budgets = [row["budget"] for row in members]
        suffix = f" ({variant})" if len(variants) > 1 else ""
        for model, style in (("transfer", "o-"), ("scratch", "s--")):
            ax.errorbar(budgets, [100 * row[model]["mean"] for row in members],
                        yerr=[100 * row[model]["std"] for row in members], fmt=style,
                        capsize=3, label=f"{model}{suffix}")
    ax.set_xscale("log")
    ax.set_xlabel("labelled target images (train + eval)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_study_report(results: list[dict[str, Any]], study_dir: Path) -> dict[str, Path]:
    """study.json, study.md and learning_curve.png from the cells finished so far."""
    rows = summarize(results)
    meets = {variant: meeting_budget(rows, variant) for variant in {r["variant"] for r in rows}}
    paths = {"json": study_dir / "study.json", "markdown": study_dir / "study.md",
             "plot": study_dir / "learning_curve.png"}
    _write_json(paths["json"], {"rows": rows, "meeting_budget": meets, "cells": results})
    seeds = sorted({result["seed"] for result in results})
    plot_learning_curves(rows, paths["plot"], f"transfer vs scratch, {len(seeds)} seed(s)")
    meeting = "\n".join(
        f"- {variant}: " + (f"scratch catches up with transfer from {budget} labels on"
                            if budget is not None else
                            "transfer stays ahead at every budget studied")
        for variant, budget in sorted(meets.items()))
    paths["markdown"].write_text(f"# Study\n\n{table(rows)}\n\n{meeting}\n\n"
                                 "![learning curve](learning_curve.png)\n", encoding="utf-8")
    return paths
