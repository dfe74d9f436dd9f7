"""How images are prepared for the model: the `image:` section of a config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from transform.image_limits import ImageLimits


class ImageConfig(BaseModel):
    """Decoded images are converted to `channels`, resized and scaled to `scale`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int = Field(ge=8, le=1024)
    width: int = Field(ge=8, le=1024)
    channels: Literal[1, 3] = 1
    max_pixels: int = Field(
        default=ImageLimits.max_pixels, ge=1, le=2**40,
        description="Images whose header claims more pixels (width x height) are rejected "
        "before decoding: a file of a few kilobytes can claim gigapixels (a decompression "
        "bomb), and the decoder would allocate them, in ingestion, Transform and the served "
        "model. A GIF counts every frame.")
    max_bytes: int = Field(
        default=ImageLimits.max_bytes, ge=1, le=2**31 - 1,
        description="Larger encoded images are refused before they are read or decoded, in "
        "ingestion, Transform and the served model (`predict` has the same cap, "
        "--max-bytes).")
    scale: Literal["unit", "symmetric"] = Field(
        default="unit", description="unit: pixels in [0, 1]; symmetric: [-1, 1] "
        "(MobileNet, Xception and other Keras applications trained that way).")

    def limits(self) -> ImageLimits:
        """What ingestion and `predict` check before reading or decoding an image."""
        return ImageLimits(self.max_pixels, self.max_bytes)
