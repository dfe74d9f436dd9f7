# The two commands: `make demo` runs the embedded Fashion-MNIST A→B pipeline, `make test` the tests.
# Each sets up everything it needs first (scripts/setup is idempotent).
.PHONY: setup demo test durations image report-screenshot

IMAGE ?= tfx-transfer:latest

setup:
	@scripts/setup

demo: setup
	.venv/bin/tfx-transfer run --config configs/fashion_mnist_ab.yaml

test: setup
	.venv/bin/python -m pytest

# bench/results/ci_durations.json: what every test costs and where it ran; the suite reads it
# to start the costliest tests first (docs/development.md).
durations: setup
	.venv/bin/python -m pytest --record-durations bench/results/ci_durations.json

image:
	docker build -f kubeflow/Dockerfile -t $(IMAGE) .

# docs/report_screenshot.png: the latest default run's report.html in headless Chromium.
CONFIG ?= configs/fashion_mnist_ab.yaml
REPORTS ?= runs/fashion-mnist-ab/reports
SCREENSHOT ?= docs/report_screenshot.png
report-screenshot: setup
	.venv/bin/tfx-transfer report --config $(CONFIG)
	.venv/bin/python -m tests.browser "$$(dirname $$(ls -t $(REPORTS)/*/report.json | head -1))/report.html" $(SCREENSHOT)
