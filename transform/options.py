"""How images are prepared for the model: the `image:` section of a config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageConfig(BaseModel):
    """Decoded images are converted to `channels`, resized and scaled to `scale`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int = Field(ge=8, le=1024)
    width: int = Field(ge=8, le=1024)
    channels: Literal[1, 3] = 1
    max_pixels: int = Field(
        default=50_000_000, ge=1, le=2**40,
        description="Images whose header claims more pixels (width x height) are rejected "
        "before decoding: a file of a few kilobytes can claim gigapixels (a decompression "
        "bomb), and the decoder would allocate them, in Transform and in the serving model.")
    scale: Literal["unit", "symmetric"] = Field(
        default="unit", description="unit: pixels in [0, 1]; symmetric: [-1, 1] "
        "(MobileNet, Xception and other Keras applications trained that way).")
