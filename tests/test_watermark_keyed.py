"""The default keyed watermark: round trips, keys, payload coding, attacks it must survive."""

from __future__ import annotations

import numpy as np
import pytest

from vidgen.backends.scene import render_scene
from vidgen.errors import ConfigurationError, KeyMaterialError, WatermarkError
from vidgen.provenance import watermark
from vidgen.provenance.watermark import keyed
from vidgen.types import Video

KEY = bytes(range(32))
PAYLOAD = 0xDEADBEEF


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def clip() -> Video:
    r = render_scene("a red circle moving right and a blue square falling on a gray background",
                     num_frames=24, height=180, width=320, fps=12)
    return Video(r.frames, r.fps)


@pytest.fixture(scope="module")
def marked(clip: Video) -> Video:
    return watermark.embed(clip, PAYLOAD, KEY)


def test_round_trip(marked: Video, clip: Video) -> None:
    d = watermark.detect(marked, KEY)
    assert d.detected and d.payload == PAYLOAD
    assert d.p_value < 1e-12 and d.bits_matched == keyed.CODE_BITS
    assert d.frames_used == 24 and d.method == "vidgen"
    assert marked.frames.shape == clip.frames.shape and marked.fps == clip.fps
    assert _psnr(marked.frames, clip.frames) > 42.0


def test_unmarked_and_wrong_key_not_detected(clip: Video, marked: Video) -> None:
    for video, key in ((clip, KEY), (marked, bytes(32)), (marked, KEY[::-1])):
        d = watermark.detect(video, key)
        assert not d.detected and d.payload is None
        assert d.p_value > 1e-6


def test_deterministic(clip: Video, marked: Video) -> None:
    assert watermark.embed(clip, PAYLOAD, KEY) == marked
    assert watermark.embed(clip, PAYLOAD + 1, KEY) != marked


@pytest.mark.parametrize("payload", [0, 1, 0xFFFFFFFF, 0x80000001])
def test_payload_coding_round_trip(payload: int) -> None:
    bits = keyed.encode_bits(payload)
    assert bits.shape == (keyed.CODE_BITS,) == (108,)
    soft = bits * np.linspace(1, 2, keyed.CODE_BITS, dtype=np.float32)
    assert keyed.decode_bits(soft) == (payload, keyed.CODE_BITS)
    soft[::9] *= -1  # 12 scattered code bits wrong: the convolutional code corrects them
    assert keyed.decode_bits(soft) == (payload, keyed.CODE_BITS - 12)


def test_viterbi_beats_repetition_at_equal_energy() -> None:
    """Same cells, same noise: 48 bits x 20 cells (hard) vs 108 code bits x 9 cells (Viterbi)."""
    rng = np.random.default_rng(1)
    sigma, trials, conv_ok, rep_ok = 2.5, 150, 0, 0
    for _ in range(trials):
        payload = int(rng.integers(0, 2**32))
        code = keyed.encode_bits(payload)
        soft = (code[:, None] + sigma * rng.standard_normal((code.size, 9))).sum(1)
        conv_ok += keyed.decode_bits(soft.astype(np.float32))[0] == payload
        word = (payload << 16) | keyed.crc16(payload)
        info = np.array([(word >> (47 - i)) & 1 for i in range(48)]) * 2 - 1
        rep = (info[:, None] + sigma * rng.standard_normal((48, 20))).sum(1)
        rep_ok += bool(np.all(np.sign(rep) == info))
    assert conv_ok / trials > 0.85 > 0.4 > rep_ok / trials


def test_crc_rejects_random_words() -> None:
    rng = np.random.default_rng(0)
    accepted = sum(keyed.decode_bits(rng.standard_normal(keyed.CODE_BITS).astype(np.float32))[0]
                   is not None for _ in range(1000))
    assert accepted <= 3  # one path per word, CRC-16: ~1.5e-5 per word


def _crop(v: Video, per_side: float) -> Video:
    _t, h, w = v.frames.shape[:3]
    dy, dx = round(h * per_side), round(w * per_side)
    return Video(np.ascontiguousarray(v.frames[:, dy:h - dy, dx:w - dx]), v.fps)


@pytest.mark.parametrize("attack", ["h264_crf28", "half", "crop10", "drop_half", "brightness",
                                    "noise", "aspect"])
def test_survives(marked: Video, attack: str, tmp_path: object) -> None:
    from pathlib import Path

    from vidgen.video_io import read_video

    f = marked.frames
    if attack == "h264_crf28":
        path = Path(str(tmp_path)) / "a.mp4"
        marked.write(path, crf=28, preset="veryfast")
        attacked = read_video(path)
    elif attack == "half":
        attacked = Video(np.ascontiguousarray(f[:, ::2, ::2]), marked.fps)
    elif attack == "crop10":
        attacked = _crop(marked, 0.1)
    elif attack == "drop_half":
        attacked = Video(np.ascontiguousarray(f[::2]), marked.fps / 2)
    elif attack == "brightness":
        attacked = Video(np.clip(f.astype(np.float32) * 1.2, 0, 255).astype(np.uint8), marked.fps)
    elif attack == "noise":
        rng = np.random.default_rng(1)
        noisy = f.astype(np.float32) + rng.normal(0, 5, f.shape)
        attacked = Video(np.clip(noisy, 0, 255).astype(np.uint8), marked.fps)
    else:  # squeeze to 4:3
        _t, h, w = f.shape[:3]
        cols = np.linspace(0, w - 1, int(h * 4 / 3) // 2 * 2).round().astype(int)
        attacked = Video(np.ascontiguousarray(f[:, :, cols]), marked.fps)
    d = watermark.detect(attacked, KEY)
    assert d.detected, (attack, d)
    assert d.payload == PAYLOAD, (attack, d)


def test_bad_inputs(clip: Video) -> None:
    with pytest.raises(ConfigurationError):
        watermark.embed(clip, -1, KEY)
    with pytest.raises(ConfigurationError):
        watermark.embed(clip, 1 << 32, KEY)
    with pytest.raises(KeyMaterialError):
        watermark.embed(clip, 1, b"short")
    with pytest.raises(WatermarkError, match="too small"):
        watermark.embed(Video(np.zeros((2, 8, 8, 3), np.uint8)), 1, KEY)
    with pytest.raises(ConfigurationError, match="no watermarking method"):
        watermark.embed(clip, 1, KEY, method="nope")


def test_key_never_in_repr() -> None:
    wm = watermark.watermarker(KEY)
    assert KEY.hex() not in repr(wm) and "KeyedVideoWatermark" in repr(wm)


def test_flat_frames_are_marked_lightly_and_detected() -> None:
    flat = Video(np.full((16, 144, 256, 3), 128, np.uint8), 8)
    m = watermark.embed(flat, 42, KEY)
    assert _psnr(m.frames, flat.frames) > 42.0
    d = watermark.detect(m, KEY)
    assert d.detected and d.payload == 42
