# The two commands: `make demo` runs the embedded Fashion-MNIST A→B pipeline, `make test` the tests;
# `make elpv` runs ImageNet → ELPV on real images.
# Each sets up everything it needs first (scripts/setup is idempotent).
.PHONY: setup demo elpv test durations image harness-image report-screenshot

IMAGE ?= tfx-transfer:latest
# The image the tests run the pipeline's tasks in (tests/kfp_backend/pods.py: IMAGE).
HARNESS_IMAGE = localhost/tfx-transfer:kfp-harness

setup:
	@scripts/setup

demo: setup
	.venv/bin/tfx-transfer run --config configs/fashion_mnist_ab.yaml

# Real transfer: an ImageNet MobileNetV1 fine-tuned on 500 labelled ELPV solar cells
# (configs/elpv_imagenet.yaml; setup installs the weights and images).
elpv: setup
	.venv/bin/tfx-transfer run --config configs/elpv_imagenet.yaml

test: setup harness-image
	.venv/bin/python -m pytest

# bench/results/ci_durations.json: what every test costs and where it ran; the suite reads it
# to start the costliest tests first (docs/development.md).
durations: setup harness-image
	.venv/bin/python -m pytest --record-durations bench/results/ci_durations.json

# The pipeline's image, with docker or podman, FROM the official TFX image (BASE=local: FROM a
# base built here with no registry, as the tests do).
image:
	scripts/build_image $(if $(filter local,$(BASE)),--local-base) $(IMAGE)

# Built before the tests start so that its first build (minutes) is not in their time; unchanged,
# it takes seconds (the engine's layer cache; bench/results/image_build.json).
harness-image: setup
	scripts/build_image --local-base $(HARNESS_IMAGE)

# docs/report_screenshot.png: the latest default run's report.html in headless Chromium.
CONFIG ?= configs/fashion_mnist_ab.yaml
REPORTS ?= runs/fashion-mnist-ab/reports
SCREENSHOT ?= docs/report_screenshot.png
report-screenshot: setup
	.venv/bin/tfx-transfer report --config $(CONFIG)
	.venv/bin/python -m tests.browser "$$(dirname $$(ls -t $(REPORTS)/*/report.json | head -1))/report.html" $(SCREENSHOT)
