"""The label budgets: seeded, stratified, deterministic samples of the train and eval splits."""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam

from components.image_example_gen.errors import DatasetError
from components.image_example_gen.records import Kept, budget_rank


def stratified_quotas(counts: dict[int, int], budget: int) -> dict[int, int]:
    """Per-class quotas proportional to `counts`, summing to `budget` (largest remainder)."""
    total = sum(counts.values())
    quotas = {label: budget * count // total for label, count in counts.items()}
    # Integer remainders keep the rounding exact; ties go to the lower label.
    by_remainder = sorted(counts, key=lambda label: (-(budget * counts[label] % total), label))
    for label in by_remainder[:budget - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def _checked_quotas(counts: dict[int, int], budget: int, label_names: list[str],
                    where: tuple[str, str, str]) -> dict[int, int]:
    dataset_path, key, split = where
    total = sum(counts.values())
    if budget > total:
        per_class = ", ".join(f"{name}: {counts.get(label, 0)}"
                              for label, name in enumerate(label_names))
        raise DatasetError(f"{dataset_path}: {key} {budget} exceeds the {total} {split} "
                           f"examples of the selected classes ({per_class})")
    return stratified_quotas(counts, budget)


def _rank(kept: Kept, seed: int) -> tuple[int, tuple[int, str]]:
    return kept.label, budget_rank(seed, kept.key)


def _within_quota(ranked: tuple[int, list[tuple[int, str]]],
                  quotas: dict[int, int]) -> Iterator[tuple[str, None]]:
    label, smallest = ranked
    for _, key in smallest[:quotas[label]]:
        yield key, None


def _is_chosen(kept: Kept, chosen: dict[str, None], complement: bool) -> bool:
    return (kept.key in chosen) != complement


class SampleBudget(beam.PTransform):
    """Keeps `budget` examples of a split: per class the quota's smallest budget_rank; with
    `complement`, every other example instead. `key` and `split` name the budget in errors
    (label_budget, train)."""

    def __init__(self, budget: int, seed: int, label_names: list[str], dataset_path: str,
                 key: str = "label_budget", split: str = "training", complement: bool = False):
        super().__init__()
        self._budget = budget
        self._complement = complement
        self._seed = seed
        self._label_names = label_names
        self._where = (dataset_path, key, split)

    def expand(self, train: beam.PCollection) -> beam.PCollection:
        # Only (label, rank, key) travel through the counting and ranking, never images.
        ranked = train | "Rank" >> beam.Map(_rank, self._seed)
        quotas = (ranked
                  | "CountPerClass" >> beam.combiners.Count.PerKey()
                  | "CountsToDict" >> beam.combiners.ToDict()
                  | "Quotas" >> beam.Map(_checked_quotas, self._budget, self._label_names,
                                         self._where))
        # No class's quota exceeds the budget, so the budget smallest per class suffice.
        chosen = (ranked
                  | "SmallestPerClass" >> beam.combiners.Top.SmallestPerKey(self._budget)
                  | "WithinQuota" >> beam.FlatMap(_within_quota,
                                                  beam.pvalue.AsSingleton(quotas)))
        return train | "KeepChosen" >> beam.Filter(_is_chosen, beam.pvalue.AsDict(chosen),
                                                   self._complement)
