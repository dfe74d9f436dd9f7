"""Shared test set-up: Keras 2 before TensorFlow loads, quiet logs, small real data. How the
suite spreads over the cores is tests/suite_schedule.py."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
