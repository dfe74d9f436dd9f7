"""Label sanity: every class in every split, and no class swamped by another.

A class missing from the train split can't be learnt, one missing from eval or test can't be
measured, and a class far rarer than another trains a model that ignores it while accuracy
still looks fine. Both are found here from counts alone, before anything trains. A missing
class is the limit of imbalance, so one setting, `max_class_imbalance`, governs both.
"""

from __future__ import annotations

ClassCounts = dict[str, dict[str, int]]  # split -> class name -> examples


def imbalance_problem(per_class: dict[str, int], max_imbalance: float) -> str | None:
    """Why these counts break the ratio: an empty class, or the biggest outnumbering the
    smallest by more than `max_imbalance`; None when they don't."""
    missing = [name for name, count in per_class.items() if count == 0]
    if missing:
        return f"no examples of class(es) {missing}"
    if len(per_class) < 2:
        return None
    largest = max(per_class, key=per_class.__getitem__)
    smallest = min(per_class, key=per_class.__getitem__)
    ratio = per_class[largest] / per_class[smallest]
    if ratio <= max_imbalance:
        return None
    return (f"class {largest!r} has {per_class[largest]} examples but {smallest!r} only "
            f"{per_class[smallest]}, {ratio:.1f} times fewer (max_class_imbalance is "
            f"{max_imbalance:g})")


def class_problems(counts: ClassCounts, label_names: list[str],
                   max_imbalance: float | None) -> list[str]:
    """One line per split that lacks a selected class or is too imbalanced; None checks
    nothing."""
    if max_imbalance is None:
        return []
    problems = []
    for split, per_class in counts.items():
        problem = imbalance_problem({name: per_class.get(name, 0) for name in label_names},
                                    max_imbalance)
        if problem:
            problems.append(f"{split} split: {problem}")
    return problems
