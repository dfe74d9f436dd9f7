"""Feature names shared by ExampleGen, Transform and the Trainer: the data contract."""

IMAGE_KEY = "image"
"""Raw feature: the encoded image bytes (PNG, JPEG, BMP or GIF)."""

LABEL_KEY = "label"
"""Raw and transformed feature: the int64 class index, 0..n_classes-1."""

LABEL_NAME_KEY = "label_name"
"""Raw feature: the class name, so statistics and reports speak class names."""

TRANSFORMED_IMAGE_KEY = "image_xf"
"""Transformed feature: float32 pixels of shape [height, width, channels]."""

LABEL_VOCABULARY_FILE = "label_vocabulary.txt"
"""Written beside the Examples splits: one class name a line, in label order."""
