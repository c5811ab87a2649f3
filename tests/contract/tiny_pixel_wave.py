"""Tiny contract configs of `pixelcnn` and `wavenet`, on small files written here."""

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import wavfile

_ROOT = Path(tempfile.gettempdir())

# 24 RGB images of 4 x 4 (256 levels per channel), for the channel-masked PixelCNN.
RGB_FOLDER = _ROOT / "genlab_tiny_pixelcnn_rgb"
if not (RGB_FOLDER / "img23.png").is_file():
    RGB_FOLDER.mkdir(exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (24, 4, 4, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image, "RGB").save(RGB_FOLDER / f"img{i:02d}.png")

# Two seconds of a noisy 220 Hz tone at 8 kHz, 16-bit PCM, for WaveNet.
TONE_WAV = _ROOT / "genlab_tiny_wavenet_tone.wav"
if not TONE_WAV.is_file():
    t = np.arange(16000) / 8000.0
    tone = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)
    wavfile.write(TONE_WAV, 8000, np.round(tone * 32767).astype(np.int16))

_PIXEL = {"hidden_channels": 6, "output_channels": 6, "num_layers": 1, "first_kernel_size": 3}
_WAVE = {
    "residual_channels": 4,
    "dilation_channels": 4,
    "skip_channels": 8,
    "layers_per_stack": 3,
    "num_stacks": 1,
}

TINY = {
    "pixelcnn": [
        # binarized digits; the test split holds the fixed binarization (train x is grey)
        (_PIXEL, "digits", {"binarize": True, "split": "test"}),
        ({**_PIXEL, "conditional": True}, "digits", {}),  # 17 levels, class-conditional
        (_PIXEL, "image_folder", {"path": str(RGB_FOLDER), "test_fraction": 0.25}),  # RGB
    ],
    "wavenet": [
        (_WAVE, "audio", {"path": str(TONE_WAV), "window": 64}),
        (
            {**_WAVE, "levels": 16, "kernel_size": 3, "input_range": (-4.0, 4.0)},
            "statsmodels",
            {"dataset": "nile", "window": 8, "normalize": True},
        ),
    ],
}
