"""`tfx-transfer`: run, check and inspect transfer-learning pipelines."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

from pipeline.config import ConfigError, PipelineConfig, check_datasets, load_config  # noqa: E402
from transform.options import ImageConfig  # noqa: E402
from kubeflow.cli import add_commands as add_kubeflow_commands  # noqa: E402
from pipeline.progress import install_progress, output_to_log, quiet_logs, shown  # noqa: E402,E501

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(PROJECT_ROOT, "configs", "fashion_mnist_ab.yaml")


def _load(args: argparse.Namespace) -> PipelineConfig:
    config = load_config(args.config, args.set)
    check_datasets(config)
    return config


def cmd_validate_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"{args.config}: OK — pipeline {config.name!r}, "
          f"{'pretrain on source, ' if config.pretrains else ''}"
          f"transfer to {len(config.target.classes or []) or 'all'} target classes, "
          f"root {config.pipeline_root}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    log_path = os.path.join(config.pipeline_root, "logs",
                            f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    print(f"Running pipeline {config.name!r} locally (root {config.pipeline_root})",
          file=sys.stderr)
    if not args.verbose:
        print(f"Logs: {log_path}", file=sys.stderr)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        terminal = sys.stderr if args.verbose else stack.enter_context(output_to_log(log_path))
        progress = install_progress(args.verbose, terminal)
        from pipeline.local_runner import run_local  # imports TFX: slow, so only when running

        run_local(config, enable_cache=not args.no_cache)
    print(f"Pipeline finished in {time.monotonic() - started:.1f} s "
          f"({len(progress.seconds)} components, {len(progress.cached)} from cache)",
          file=sys.stderr)
    return _report(config, run_id=None, run_log=None if args.verbose else log_path)


def _report(config: PipelineConfig, run_id: str | None, run_log: str | None = None) -> int:
    from pipeline.pipeline import label_names
    from pipeline.report import build_report, summary_table, write_report

    report = build_report(config.metadata_path, label_names(config.target), run_id, run_log)
    paths = write_report(report, os.path.join(config.pipeline_root, "reports", report["run_id"]))
    print(summary_table(report))
    print(f"report: {paths['html']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    if not os.path.exists(config.metadata_path):
        raise ConfigError(f"{config.metadata_path}: no runs yet for pipeline {config.name!r}")
    return _report(config, args.run)


def cmd_study(args: argparse.Namespace) -> int:
    from pipeline import study

    grid = study.Grid(budgets=tuple(args.budgets), seeds=tuple(args.seeds),
                      reuse_layers=tuple(args.reuse_layers), unfreeze=tuple(args.unfreeze),
                      eval_share=args.eval_share)
    base = load_config(args.config, args.set)
    study_dir = os.path.join(base.pipeline_root, "studies",
                             args.id or study.study_id(args.config, args.set, grid))
    configs = study.cell_configs(args.config, args.set, grid, study_dir)
    print(f"Study of pipeline {base.name!r} in {study_dir} (the same command resumes it)",
          file=sys.stderr)
    with contextlib.ExitStack() as stack:
        terminal = sys.stderr if args.verbose else stack.enter_context(
            output_to_log(os.path.join(study_dir, "study.log")))
        install_progress(args.verbose, sys.stderr)  # component lines: into the log unless -v
        from pipeline.local_runner import run_local

        results = study.run_study(configs, Path(study_dir), run_local, terminal)
    paths = study.write_study_report(results, Path(study_dir))
    print(study.table(study.summarize(results)))
    print(f"study: {paths['markdown']}")
    return 0


def _knob(value: str) -> str:
    if value != "all" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected 'all' or a number")
    return value


def _seed(value: str) -> int:
    if not value.isdigit() or int(value) > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a seed is a whole number 0 to 2^32 - 1")
    return int(value)


STUDY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _study_id(value: str) -> str:
    """A folder name under <pipeline_root>/studies/, never a path out of it."""
    if not STUDY_ID.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a study id is a folder name of letters, digits, '.', '_' and '-' "
            "(up to 100, not starting with '.'); it can't name another folder")
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return number


def _share(value: str) -> float:
    share = float(value)
    if not 0 < share < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a share between 0 and 1")
    return share


def _add_study_command(commands: argparse._SubParsersAction) -> None:
    from pipeline.study import DEFAULT_BUDGETS, DEFAULT_EVAL_SHARE, DEFAULT_SEEDS

    parser = commands.add_parser(
        "study", help="Transfer vs scratch over label budgets x seeds: table and learning "
        "curve in <pipeline_root>/studies/<id>/.")
    _add_config_args(parser)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(DEFAULT_BUDGETS),
                        help="Labelled target images per cell, train + eval "
                        f"(default: {' '.join(map(str, DEFAULT_BUDGETS))}).")
    parser.add_argument("--seeds", type=_seed, nargs="+", default=list(DEFAULT_SEEDS),
                        help="target_seed values; the source side keeps the config's seed.")
    parser.add_argument("--eval-share", type=_share, default=DEFAULT_EVAL_SHARE,
                        help="Share of each budget in the eval split (at least one image "
                        f"per class; default {DEFAULT_EVAL_SHARE}).")
    parser.add_argument("--reuse-layers", type=_knob, nargs="+", default=["all"],
                        help="model.reuse_layers values to compare ('all' or numbers).")
    parser.add_argument("--unfreeze", type=_knob, nargs="+", default=["all"],
                        help="training.fine_tune.unfreeze values to compare.")
    parser.add_argument("--id", type=_study_id,
                        help="Study directory name (default: a hash of the config, "
                        "overrides and grid, so the same command resumes).")
    parser.set_defaults(handler=cmd_study)


def cmd_predict(args: argparse.Namespace) -> int:
    from pipeline.predict import classify_files
    from transform.image_limits import ImageLimits

    failed = 0
    limits = ImageLimits(max_pixels=args.max_pixels, max_bytes=args.max_bytes)
    for result in classify_files(args.model, args.images, limits):
        name = shown(result["file"])
        if "error" in result:
            failed += 1
            print(f"{name}: {result['error']}", file=sys.stderr, flush=True)
            continue
        probabilities = "  ".join(f"{shown(str(label))}={p:.3f}" for label, p in
                                  result["probabilities"].items())
        print(f"{name}: {shown(result['class_name'])}  ({probabilities})", flush=True)
    if failed:
        print(f"{failed} of {len(args.images)} files could not be classified", file=sys.stderr)
    return 1 if failed else 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from trainer.weights_import import import_weights

    try:
        summary = import_weights(args.architecture, args.source, args.output, args.include_top)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{summary.output}: {summary.architecture} weights"
          f"{' with the ImageNet classifier' if args.include_top else ''}, "
          f"{summary.converted} tensors converted from {args.source} in {summary.seconds:.1f} s "
          f"(numeric check: max abs difference {summary.max_difference:.2g}; "
          f"{len(summary.left_out)} source tensors left out)")
    return 0


def _add_weights_command(commands: argparse._SubParsersAction) -> None:
    from trainer.options import IMPORTABLE_WEIGHTS

    weights = commands.add_parser("weights", help="Pretrained weights for model.weights.")
    actions = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    import_ = actions.add_parser(
        "import", help="Convert ImageNet weights of another framework (a TF1 frozen graph or "
        "checkpoint, a PyTorch state dict) into a Keras .h5 weights file.")
    import_.add_argument("--architecture", required=True, choices=IMPORTABLE_WEIGHTS)
    import_.add_argument("--source", required=True,
                         help="mobilenet_v1: a TF-slim frozen graph (.pb) or checkpoint prefix; "
                         "efficientnet_lite0: a PyTorch state dict (.pth).")
    import_.add_argument("--output", required=True, help="The .h5 weights file to write.")
    import_.add_argument("--include-top", action="store_true",
                         help="Keep the 1000-class ImageNet classifier (default: the base only, "
                         "what model.weights loads).")
    import_.set_defaults(handler=cmd_weights_import)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=DEFAULT_CONFIG,
                        help="YAML run config (default: the embedded Fashion-MNIST A→B).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config value, e.g. --set training.batch_size=64; "
                        "repeatable. Values are YAML.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfx-transfer", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Show TensorFlow, TFX and Beam logs and full tracebacks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="Run the pipeline locally on Apache Beam.")
    _add_config_args(run)
    run.add_argument("--no-cache", action="store_true",
                     help="Re-run every component even where a cached result exists.")
    run.set_defaults(handler=cmd_run)

    report = commands.add_parser("report", help="Re-render the report of a past run.")
    _add_config_args(report)
    report.add_argument("--run", help="Pipeline run id (default: the latest run).")
    report.set_defaults(handler=cmd_report)

    predict = commands.add_parser("predict", help="Classify image files with a pushed model.")
    predict.add_argument("--model", required=True,
                         help="A SavedModel dir, or a serving dir (its latest version is used).")
    predict.add_argument("images", nargs="+", help="Image files (PNG, JPEG, BMP, GIF).")
    defaults = ImageConfig.model_fields
    predict.add_argument("--max-bytes", type=_positive_int,
                         default=defaults["max_bytes"].default,
                         help="Refuse larger files before reading them (image.max_bytes; "
                         "default %(default)s). The model checks its own limits as well.")
    predict.add_argument("--max-pixels", type=_positive_int,
                         default=defaults["max_pixels"].default,
                         help="Refuse images whose header states more pixels to decode, GIF "
                         "frames counted (image.max_pixels; default %(default)s).")
    predict.set_defaults(handler=cmd_predict)

    _add_study_command(commands)
    _add_weights_command(commands)

    validate = commands.add_parser("validate-config",
                                   help="Check a config and its datasets without running.")
    _add_config_args(validate)
    validate.set_defaults(handler=cmd_validate_config)
    add_kubeflow_commands(commands, _add_config_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_logs(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        if args.verbose:
            raise
        print(f"error: {type(error).__name__}: {error}\n(run with -v for the full traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
