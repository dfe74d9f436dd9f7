"""Kubeflow Pipelines: compile, container image, submit and schedule."""
import os

# Keras 3 breaks `save_format='tf'` SavedModels and TFMA's Keras metrics; TensorFlow reads
# this once, at its first import, so it is set before anything can import it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
