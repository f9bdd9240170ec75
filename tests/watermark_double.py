"""A test double for the watermark slot: keyed, exact, robust to H.264, and visible.

It is not a watermark (it paints grey blocks over the top-left of every
frame); it lets the chain, the store and ``verify`` be tested end to end
without depending on the real method's speed or tuning. Registered as method
``test-blocks`` by ``conftest.py``.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

from vidgen.provenance.watermark.base import Detection, check_key, check_payload
from vidgen.types import Video

TEST_METHOD = "test-blocks"
TEST_KEY = bytes(range(32))
CHECK_BITS = 24
GRID_W, GRID_H = 8, 7  # 56 cells = 32 payload bits + 24 keyed check bits
DARK, LIGHT = 40, 215


class BlockTestWatermark:
    """Payload bits (masked with a keyed sequence) plus a keyed MAC, as dark/light blocks."""

    name = TEST_METHOD

    def __init__(self, key: bytes) -> None:
        self.key = check_key(key)
        self.embedded = 0  # how many clips this instance marked (tests read it)

    def _code(self, payload: int) -> np.ndarray:
        mask = int.from_bytes(hmac.new(self.key, b"mask", hashlib.sha256).digest()[:4], "big")
        mac = hmac.new(self.key, payload.to_bytes(4, "big"), hashlib.sha256).digest()
        check = int.from_bytes(mac[:3], "big")
        word = ((payload ^ mask) << CHECK_BITS) | check
        return np.array([(word >> (55 - i)) & 1 for i in range(56)], np.uint8)

    def _decode(self, bits: np.ndarray) -> int:
        word = int("".join(str(int(b)) for b in bits), 2)
        mask = int.from_bytes(hmac.new(self.key, b"mask", hashlib.sha256).digest()[:4], "big")
        return (word >> CHECK_BITS) ^ mask

    @staticmethod
    def _cell(h: int, w: int) -> int:
        return max(4, min(h, w) // 16)

    def embed(self, video: Video, payload: int) -> Video:
        bits = self._code(check_payload(payload))
        frames = video.frames.copy()
        c = self._cell(video.height, video.width)
        for i, bit in enumerate(bits):
            y, x = (i // GRID_W) * c, (i % GRID_W) * c
            frames[:, y:y + c, x:x + c] = LIGHT if bit else DARK
        self.embedded += 1
        return Video(frames, video.fps)

    def detect(self, video: Video) -> Detection:
        c = self._cell(video.height, video.width)
        if GRID_H * c > video.height or GRID_W * c > video.width:
            return Detection(False, None, 1.0, 0, video.num_frames, self.name)
        luma = video.frames.astype(np.float64).mean(axis=(0, 3))
        m = max(1, c // 4)  # ignore cell borders, where compression smears
        means = np.array([luma[(i // GRID_W) * c + m:(i // GRID_W + 1) * c - m,
                               (i % GRID_W) * c + m:(i % GRID_W + 1) * c - m].mean()
                          for i in range(GRID_W * GRID_H)])
        bits = (means > (DARK + LIGHT) / 2).astype(np.uint8)
        payload = self._decode(bits)
        matched = int((self._code(payload) == bits).sum())
        detected = matched == GRID_W * GRID_H
        return Detection(detected, payload if detected else None,
                         2.0 ** -CHECK_BITS if detected else 1.0, matched, video.num_frames,
                         self.name, score=float(matched))
