"""Numpy layers for the conversions' numeric checks, taking weights in the source's own layout.

The kernel's layout is spelt as einsum subscripts (`i`, `j` kernel rows and columns, `c` input
channel, `o` output channel): 'ijco' is TensorFlow's HWIO, 'ocij' PyTorch's OIHW. A check
that reads the source this way shares nothing with the transposes it checks.
"""

from __future__ import annotations

import numpy as np


def random_images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Two images of uniform noise in [-1, 1], the range every model here takes."""
    return np.random.default_rng(seed).uniform(-1, 1, (2, *shape)).astype(np.float32)


def conv(images: np.ndarray, kernel: np.ndarray, stride: int, layout: str) -> np.ndarray:
    """A convolution with TensorFlow's 'same' padding; NHWC in and out."""
    windows = _windows(images, kernel.shape[layout.index("i")], stride)
    return np.einsum(f"nyxcij,{layout}->nyxo", windows, kernel, optimize=True)


def depthwise_conv(images: np.ndarray, kernel: np.ndarray, stride: int,
                   layout: str) -> np.ndarray:
    """A depthwise convolution (one filter a channel), 'same' padding; `layout` of 'i', 'j'
    and 'c', e.g. 'ijc' for TensorFlow's (kh, kw, C, 1)[..., 0]."""
    windows = _windows(images, kernel.shape[layout.index("i")], stride)
    return np.einsum(f"nyxcij,{layout}->nyxc", windows, kernel, optimize=True)


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
               variance: np.ndarray, epsilon: float = 1e-3) -> np.ndarray:
    """Inference-mode BatchNorm over the last axis."""
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _windows(images: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, H', W', C, kernel, kernel) windows of `images`, padded as TensorFlow's 'same' pads:
    the odd extra row and column go to the bottom and right."""
    _, height, width, _ = images.shape
    pads = [max((-(-size // stride) - 1) * stride + kernel - size, 0) for size in (height, width)]
    padded = np.pad(images, [(0, 0), *((pad // 2, pad - pad // 2) for pad in pads), (0, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    return windows[:, ::stride, ::stride]
