"""Edit, stylize, inpaint, cinemagraph and loop on the native latent backends (DiT and STUNet).

The models are tiny: a few training steps of the "test" presets on a tiny
autoencoder. Their weights are then jittered (autoencoder before training,
denoiser after) so that decoding and denoising are not the near-identity maps
of freshly initialised zero-output layers, and the checks below see real
changes rather than grey frames.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import vidgen
from vidgen import errors
from vidgen.backends.dit import DiTBackend
from vidgen.backends.latent import load_checkpoint, save_checkpoint
from vidgen.backends.latent_backend import LatentDiffusionBackend
from vidgen.backends.latent_tasks import (
    crossfade_latents,
    frames_of_latents,
    latent_frames_touching,
    latent_mask,
    loop_plan,
)
from vidgen.backends.stunet import STUNetBackend
from vidgen.pipeline import Pipeline
from vidgen.training.autoencoder import AutoencoderConfig
from vidgen.training.train import export, train
from vidgen.types import Frames, GenerationRequest, Inputs, Task, Video

from .conftest import DevKeys
from .tiny_models import tiny_autoencoder, tiny_recipe

torch.set_num_threads(1)

T, H, W = 8, 32, 32


def _jitter(module: torch.nn.Module, scale: float, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.fixture(scope="module", params=["dit", "stunet"])
def backend(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> LatentDiffusionBackend:
    arch: str = request.param
    root = tmp_path_factory.mktemp(arch)
    vae = tiny_autoencoder()
    _jitter(vae, 0.05, 1)
    config = tiny_recipe(root, vae, architecture=arch, steps=2, cache_clips=4, num_frames=T,
                         height=H, width=W)
    assert train(config, root / "run", max_minutes=None, threads=1) == 2
    weights = export(root / "run", root / f"{arch}-test.safetensors")
    model, metadata = load_checkpoint(weights)
    _jitter(model.denoiser, 0.05, 2)
    save_checkpoint(model, weights, extra={k: v for k, v in metadata.items()
                                           if k not in ("kind", "spec")})
    cls = DiTBackend if arch == "dit" else STUNetBackend
    return cls(weights=weights, steps=3)


def _source(seed: int = 0) -> Video:
    """A moving bright square on a dark gradient: some structure for the autoencoder."""
    frames = np.zeros((T, H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    rng = np.random.default_rng(seed)
    for i in range(T):
        frames[i] = np.stack([4 * xx, 3 * yy, 60 + 0 * xx], -1).astype(np.uint8)
        frames[i, 10:18, 4 + 2 * i:12 + 2 * i] = (230, 40, 40)
    return Video(frames + rng.integers(0, 3, frames.shape).astype(np.uint8), fps=8.0)


def _box_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[9:20, 13:27] = True  # not aligned to the 4-pixel latent cells
    return mask


def _request(task: Task, **kw: object) -> GenerationRequest:
    return GenerationRequest(prompt="a blue square moving left", task=task, seed=3,
                             **kw)  # type: ignore[arg-type]


def _psnr(a: Frames, b: Frames) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


REQUESTS = {
    Task.EDIT: lambda: _request(Task.EDIT, inputs=Inputs(video=_source())),
    Task.STYLIZE: lambda: _request(Task.STYLIZE, inputs=Inputs(video=_source())),
    Task.INPAINT: lambda: _request(Task.INPAINT,
                                   inputs=Inputs(video=_source(), mask=_box_mask())),
    Task.CINEMAGRAPH: lambda: _request(Task.CINEMAGRAPH, num_frames=T, height=H, width=W,
                                       inputs=Inputs(image=_source().frames[0],
                                                     mask=_box_mask())),
    Task.LOOP: lambda: _request(Task.LOOP, num_frames=T, height=H, width=W),
}


# --- every task on both architectures ------------------------------------------------------


def test_the_editing_tasks_are_capabilities(backend: LatentDiffusionBackend) -> None:
    assert backend.capabilities().tasks >= set(REQUESTS) | {Task.TEXT_TO_VIDEO}


@pytest.mark.parametrize("task", list(REQUESTS))
def test_every_task_runs_and_is_deterministic(backend: LatentDiffusionBackend,
                                              task: Task) -> None:
    request = REQUESTS[task]()
    a, b = backend.sample(request), backend.sample(request)
    assert a.frames.shape == (T, H, W, 3) and a.frames.dtype == np.uint8 and a.fps == 8.0
    assert np.array_equal(a.frames, b.frames)
    other = backend.sample(GenerationRequest(**{**_fields(request), "seed": 4}))
    assert not np.array_equal(a.frames, other.frames)


def _fields(request: GenerationRequest) -> dict[str, object]:
    return {k: getattr(request, k) for k in ("prompt", "task", "num_frames", "height", "width",
                                             "fps", "seed", "strength", "inputs", "options")}


def test_inpaint_keeps_the_outside_exactly(backend: LatentDiffusionBackend) -> None:
    source = _source()
    timed = np.broadcast_to(_box_mask(), (T, H, W)).copy()
    timed[:3] = False  # a (T, H, W) mask: frames 0-2 kept whole
    for mask in (_box_mask(), timed):
        out = backend.sample(_request(Task.INPAINT, inputs=Inputs(video=source, mask=mask)))
        full = np.broadcast_to(mask, (T, H, W))
        assert np.array_equal(out.frames[~full], source.frames[~full])
        assert np.abs(out.frames[full].astype(int) - source.frames[full]).mean() > 2


def test_inpaint_resampling_is_an_option(backend: LatentDiffusionBackend) -> None:
    """RePaint resampling (default 4 repeats of a step) changes the drawing, not the
    guarantee outside the mask; 1 is plain replacement."""
    source = _source()
    default, once = (backend.sample(_request(Task.INPAINT, options=options, inputs=Inputs(
        video=source, mask=_box_mask()))).frames for options in ({}, {"resample": 1}))
    assert not np.array_equal(default, once)
    assert np.array_equal(once[:, ~_box_mask()], source.frames[:, ~_box_mask()])
    explicit = backend.sample(_request(Task.INPAINT, options={"resample": 4}, inputs=Inputs(
        video=source, mask=_box_mask()))).frames
    assert np.array_equal(default, explicit)


def test_inpaint_everything_is_text_to_video(backend: LatentDiffusionBackend) -> None:
    """An all-True mask regenerates everything: text-to-video with the same seed."""
    out = backend.sample(_request(Task.INPAINT, inputs=Inputs(
        video=_source(), mask=np.ones((H, W), bool))))
    t2v = backend.sample(_request(Task.TEXT_TO_VIDEO, num_frames=T, height=H, width=W))
    assert np.array_equal(out.frames, t2v.frames)


def test_cinemagraph_keeps_the_still_region_exactly(backend: LatentDiffusionBackend) -> None:
    request = REQUESTS[Task.CINEMAGRAPH]()
    image, mask = request.inputs.image, _box_mask()
    assert image is not None
    out = backend.sample(request).frames
    assert np.array_equal(out[0], image)  # the first frame is the image
    assert all(np.array_equal(frame[~mask], image[~mask]) for frame in out)
    motion = np.abs(np.diff(out.astype(int), axis=0))[:, mask].mean()
    assert motion > 0.5  # something moves inside the mask


def test_edit_strength_near_zero_returns_the_source(backend: LatentDiffusionBackend) -> None:
    """SDEdit from t = 0.02 barely moves the latents; compare with the autoencoder's own
    reconstruction (the tiny autoencoder is untrained, so not with the source)."""
    source = _source()
    recon = backend._decode(backend._encode(source.frames), T)
    near = backend.sample(_request(Task.EDIT, strength=0.02, inputs=Inputs(video=source)))
    far = backend.sample(_request(Task.EDIT, strength=0.9, inputs=Inputs(video=source)))
    assert _psnr(near.frames, recon) > 35
    assert _psnr(near.frames, recon) > _psnr(far.frames, recon) + 5


def test_edit_strength_one_is_text_to_video(backend: LatentDiffusionBackend) -> None:
    """At strength 1 the flow schedule keeps nothing of the source: text-to-video exactly."""
    edit = backend.sample(_request(Task.EDIT, strength=1.0, inputs=Inputs(video=_source())))
    t2v = backend.sample(_request(Task.TEXT_TO_VIDEO, num_frames=T, height=H, width=W))
    assert np.array_equal(edit.frames, t2v.frames)


def test_stylize_defaults_to_a_lower_strength(backend: LatentDiffusionBackend) -> None:
    video = _source()
    default = backend.sample(_request(Task.STYLIZE, inputs=Inputs(video=video)))
    explicit = backend.sample(_request(Task.STYLIZE, strength=0.45, inputs=Inputs(video=video)))
    edit = backend.sample(_request(Task.EDIT, inputs=Inputs(video=video)))  # 0.6
    assert np.array_equal(default.frames, explicit.frames)
    assert not np.array_equal(default.frames, edit.frames)


def test_loop_folds_a_longer_clip(backend: LatentDiffusionBackend,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Text-to-video of T + 2R + 1 frames, folded: the refined period keeps the long clip's
    latent frames after the crossfade exactly and redraws the R crossfaded ones."""
    period, fade = loop_plan(T, None, backend.vae.config)
    calls: list[tuple[dict[str, Any], torch.Tensor]] = []
    original = backend._sample_latents

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(*args, **kwargs)
        calls.append(({"shape": args[1], "known": args[3], **kwargs}, out))
        return out

    monkeypatch.setattr(backend, "_sample_latents", spy)
    looped = backend.sample(REQUESTS[Task.LOOP]()).frames
    assert looped.shape == (T, H, W, 3)
    (first, z_long), (second, z_loop) = calls
    assert first["shape"][2] == 1 + period + fade and first["known"] is None
    folded, known = second["known"]
    assert second["start_t"] == 0.6 and torch.equal(second["x0"], folded)
    assert known.flatten().tolist() == [1.0] + [0.0] * fade + [1.0] * (period - fade)
    assert torch.equal(folded[:, :, 1 + fade:], z_long[:, :, 1 + fade:period + 1])
    assert torch.equal(z_loop[:, :, 1 + fade:], z_long[:, :, 1 + fade:period + 1])
    assert not torch.allclose(z_loop[:, :, 1:1 + fade], folded[:, :, 1:1 + fade])
    with pytest.raises(errors.BackendError, match="cannot be looped"):
        backend.sample(_request(Task.LOOP, inputs=Inputs(video=_source())))


@pytest.mark.parametrize("task", [Task.EDIT, Task.LOOP])
def test_progress_reaches_the_end(backend: LatentDiffusionBackend, task: Task) -> None:
    seen: list[tuple[int, int]] = []
    backend.sample(REQUESTS[task](), progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))


# --- bad inputs ------------------------------------------------------------------------------


def test_missing_inputs_are_backend_errors(backend: LatentDiffusionBackend) -> None:
    for task in (Task.EDIT, Task.STYLIZE, Task.INPAINT):
        with pytest.raises(errors.BackendError, match="input video"):
            backend.sample(_request(task, num_frames=T, height=H, width=W))
    with pytest.raises(errors.BackendError, match="needs a mask"):
        backend.sample(_request(Task.INPAINT, inputs=Inputs(video=_source())))
    with pytest.raises(errors.BackendError, match="input image"):
        backend.sample(_request(Task.CINEMAGRAPH, height=H, width=W,
                                inputs=Inputs(mask=_box_mask())))
    with pytest.raises(errors.BackendError, match="needs a mask"):
        backend.sample(_request(Task.CINEMAGRAPH, inputs=Inputs(image=_source().frames[0])))


def test_size_mismatch_is_refused(backend: LatentDiffusionBackend) -> None:
    with pytest.raises(errors.BackendError, match="sizes must match"):
        backend.sample(_request(Task.EDIT, height=64, width=64, inputs=Inputs(video=_source())))
    with pytest.raises(errors.BackendError, match="keeps the input's 8 frames"):
        backend.sample(_request(Task.EDIT, num_frames=16, inputs=Inputs(video=_source())))
    with pytest.raises(errors.BackendError, match="sizes must match"):
        backend.sample(_request(Task.CINEMAGRAPH, height=64, width=64, inputs=Inputs(
            image=_source().frames[0], mask=_box_mask())))
    odd = Video(np.zeros((T, 30, 30, 3), np.uint8))
    with pytest.raises(errors.UnsupportedTask, match="divisible"):
        backend.sample(_request(Task.EDIT, inputs=Inputs(video=odd)))


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5, float("nan")])
def test_strength_out_of_range(backend: LatentDiffusionBackend, strength: float) -> None:
    with pytest.raises(errors.ConfigurationError, match="strength"):
        backend.sample(_request(Task.EDIT, strength=strength, inputs=Inputs(video=_source())))


def test_strength_where_it_does_not_apply(backend: LatentDiffusionBackend) -> None:
    with pytest.raises(errors.ConfigurationError, match="does not apply"):
        backend.sample(_request(Task.TEXT_TO_VIDEO, strength=0.5))
    with pytest.raises(errors.ConfigurationError, match="loop_frames"):
        backend.sample(_request(Task.LOOP, num_frames=T, height=H, width=W,
                                options={"loop_frames": "half"}))


def test_bad_masks(backend: LatentDiffusionBackend) -> None:
    video = _source()
    bad = {
        "has shape": np.ones((H, W + 1), bool),
        "all False": np.zeros((T, H, W), bool),
        "boolean": np.full((H, W), 0.5),
    }
    for message, mask in bad.items():
        with pytest.raises(errors.ConfigurationError, match=message):
            backend.sample(_request(Task.INPAINT, inputs=Inputs(video=video, mask=mask)))
    with pytest.raises(errors.ConfigurationError, match="has shape"):  # a still has no time
        backend.sample(_request(Task.CINEMAGRAPH, num_frames=T, inputs=Inputs(
            image=video.frames[0], mask=np.ones((T, H, W), bool))))
    for resample in (0, 51, "4"):
        with pytest.raises(errors.ConfigurationError, match="resample"):
            backend.sample(_request(Task.INPAINT, options={"resample": resample},
                                    inputs=Inputs(video=video, mask=_box_mask())))
    with pytest.raises(errors.ConfigurationError, match="mask_dilation"):
        backend.sample(_request(Task.INPAINT, options={"mask_dilation": -1},
                                inputs=Inputs(video=video, mask=_box_mask())))
    uint8 = _box_mask().astype(np.uint8)  # 0/1 integers are a mask too
    out = backend.sample(_request(Task.INPAINT, inputs=Inputs(video=video, mask=uint8)))
    assert np.array_equal(out.frames[:, ~_box_mask()], video.frames[:, ~_box_mask()])


# --- masks on the latent grid ----------------------------------------------------------------


def test_latent_mask_regenerates_every_cell_a_pixel_touches() -> None:
    config = AutoencoderConfig(base_channels=8, channel_multipliers=(1, 2, 2))  # 4x, 2x in time
    mask = np.zeros((8, 16, 16), bool)
    mask[5, 7, 8] = True  # frame 5 -> latent frame 3 (frames 5, 6); cell (1, 2)
    got = latent_mask(mask, config)
    assert got.shape == (1, 1, 5, 4, 4) and int(got.sum()) == 1 and bool(got[0, 0, 3, 1, 2])
    grown = latent_mask(mask, config, dilation=1)
    assert int(grown.sum()) == 9 and bool(grown[0, 0, 3, 0:3, 1:4].all())
    mask[0, 0, 0] = True  # frame 0 is latent frame 0 on its own
    assert bool(latent_mask(mask, config)[0, 0, 0, 0, 0])
    frames = np.zeros(8, bool)
    frames[[0, 4]] = True
    latents = latent_frames_touching(frames, 2, 5)
    assert latents.tolist() == [True, False, True, False, False]
    assert frames_of_latents(latents, 2, 8).tolist() == [True, False, False, True, True,
                                                         False, False, False]


def test_loop_plan_and_crossfade() -> None:
    config = AutoencoderConfig(base_channels=8, channel_multipliers=(1, 2, 2))  # 2x in time
    assert loop_plan(16, None, config) == (8, 4)  # 8 latent frames a period, 4 crossfaded
    assert loop_plan(16, 3, config) == (8, 2)
    assert loop_plan(4, None, config) == (2, 1)
    with pytest.raises(errors.ConfigurationError, match="loop_frames"):
        loop_plan(16, 16, config)
    with pytest.raises(errors.ConfigurationError, match="multiple of 2"):
        loop_plan(15, None, config)
    z = torch.arange(11.0).view(1, 1, 11, 1, 1)  # latent frame k holds the value k
    out = crossfade_latents(z, period=8, fade=2).flatten().tolist()
    # k = 1, 2 blend z_{k+8} into z_k with weight k / 3 on z_k; then z_3 .. z_8 as they are
    assert out == pytest.approx([9 - 8 / 3, 10 - 16 / 3, 3, 4, 5, 6, 7, 8])


# --- through the chain -----------------------------------------------------------------------


def test_inpaint_through_the_pipeline(backend: LatentDiffusionBackend, dev_keys: DevKeys,
                                      anchors: Path, tmp_path: Path) -> None:
    """Inpainting end to end: the input is scanned and recorded as the parent ingredient, and
    the output is watermarked and signed."""
    if backend.name != "dit":
        pytest.skip("the chain is the same for every backend; run once")
    pipe = Pipeline(backend, signer=dev_keys.signer())
    res = pipe.inpaint(_source(), _box_mask(), "a blue square moving left", seed=3,
                       output=tmp_path / "inpaint.mp4")
    assert res.video.frames.shape == (T, H, W, 3) and res.path.is_file()
    report = vidgen.verify(res.path, trust=anchors)
    assert report.verdict == "confirmed"
    assert report.watermark is not None and report.watermark.detected
    assert report.watermark.payload == res.watermark_id
    assert report.c2pa is not None and report.c2pa.manifest is not None
    ingredients = report.c2pa.manifest["ingredients"]
    assert [(i["relationship"], i["title"]) for i in ingredients] == [("parentOf", "input video")]
    gen = next(a["data"] for a in report.c2pa.manifest["assertions"]
               if a["label"] == "org.vidgen.generation")
    assert gen["task"] == "inpaint" and gen["backend"] == "dit"
    looped = pipe.loop("a blue square moving left", num_frames=T, height=H, width=W,
                       output=tmp_path / "loop.mp4")
    assert vidgen.verify(looped.path, trust=anchors).verdict == "confirmed"


# --- storyboard ------------------------------------------------------------------------------


STORY = ("a blue square moving left", "a blue square moving up", "a blue square moving right")


def _story(prompts: tuple[str, ...] = STORY, **kw: object) -> GenerationRequest:
    fields: dict[str, Any] = {"num_frames": T, "height": H, "width": W, "seed": 3, **kw}
    return GenerationRequest(prompt=prompts[0] if prompts else "a blue square",
                             task=Task.STORYBOARD, storyboard=prompts, **fields)


def test_storyboard_is_text_to_video_then_extension_windows(
        backend: LatentDiffusionBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segment 0 is text-to-video of prompt 0; each next segment is sampled with its own prompt
    in windows whose first latent frames are the clip so far, known."""
    assert Task.STORYBOARD in backend.capabilities().tasks
    calls: list[tuple[str, Any]] = []
    original = backend._sample_latents

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append((args[0], args[3]))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend, "_sample_latents", spy)
    seen: list[tuple[int, int]] = []
    out = backend.sample(_story(), progress=lambda d, t: seen.append((d, t))).frames
    assert out.shape == (len(STORY) * T, H, W, 3)
    assert seen[-1] == (len(STORY) * T, len(STORY) * T)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))
    assert calls[0] == (STORY[0], None)  # text-to-video
    later = calls[1:]  # one window (9 new frames >= T) per later segment
    assert [p for p, _ in later] == list(STORY[1:])
    for _prompt, known in later:
        assert known is not None and known[1].flatten().tolist()[:4] == [1.0] * 4
    monkeypatch.undo()
    t2v = backend.sample(GenerationRequest(prompt=STORY[0], num_frames=T, height=H, width=W,
                                           seed=3)).frames
    assert np.array_equal(out[:T], t2v)
    again = backend.sample(_story()).frames
    assert np.array_equal(out, again)  # deterministic for a seed
    other = backend.sample(_story((STORY[0], STORY[2], STORY[1]))).frames
    assert np.array_equal(other[:T], out[:T]) and not np.array_equal(other[T:], out[T:])
    assert not np.array_equal(backend.sample(_story(seed=4)).frames, out)
    single = backend.sample(_story(STORY[:1])).frames
    assert np.array_equal(single, t2v)


def test_storyboard_errors_are_typed(backend: LatentDiffusionBackend) -> None:
    with pytest.raises(errors.ConfigurationError, match="at least one prompt"):
        backend.sample(_story(()))
    with pytest.raises(errors.ConfigurationError, match="first segment"):
        backend.sample(GenerationRequest(prompt=STORY[1], task=Task.STORYBOARD,
                                         storyboard=STORY, num_frames=T, height=H, width=W))
    with pytest.raises(errors.CaptionError, match="does not"):
        backend.sample(_story((STORY[0], "a blue square dancing the tango")))
    with pytest.raises(errors.ConfigurationError, match="at least 7 frames"):
        backend.sample(_story(num_frames=4))
    with pytest.raises(errors.ConfigurationError, match="storyboard task only"):
        backend.sample(GenerationRequest(prompt=STORY[0], storyboard=STORY))
    with pytest.raises(errors.BackendError, match="from text only"):
        backend.sample(_story(inputs=Inputs(video=_source())))
    with pytest.raises(errors.ConfigurationError, match="does not apply"):
        backend.sample(_story(strength=0.5))


def test_storyboard_through_the_pipeline(backend: LatentDiffusionBackend, dev_keys: DevKeys,
                                         anchors: Path, tmp_path: Path) -> None:
    """Every prompt passes the prompt policy; the output is signed and watermarked."""
    if backend.name != "dit":
        pytest.skip("the chain is the same for every backend; run once")
    checked: list[str] = []

    def gate(text: str) -> vidgen.types.PromptDecision:
        checked.append(text)
        return vidgen.types.PromptDecision(allowed=True)

    pipe = Pipeline(backend, signer=dev_keys.signer(), prompt_gates=[gate])
    res = pipe.storyboard(list(STORY[:2]), frames_per_prompt=T, height=H, width=W, seed=3,
                          output=tmp_path / "story.mp4")
    assert res.video.num_frames == 2 * T
    assert set(checked) == set(STORY[:2])
    report = vidgen.verify(res.path, trust=anchors)
    assert report.verdict == "confirmed"
    assert report.c2pa is not None and report.c2pa.manifest is not None
    gen = next(a["data"] for a in report.c2pa.manifest["assertions"]
               if a["label"] == "org.vidgen.generation")
    assert gen["task"] == "storyboard"
    with pytest.raises(errors.ConfigurationError, match="at least one prompt"):
        pipe.storyboard([], output=tmp_path / "empty.mp4")
    with pytest.raises(errors.ConfigurationError, match="not one string"):
        pipe.storyboard(STORY[0], output=tmp_path / "str.mp4")
    assert not (tmp_path / "empty.mp4").exists()
