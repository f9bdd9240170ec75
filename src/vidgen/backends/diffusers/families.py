"""The model families the diffusers adapter serves, as data.

One ``Family`` per model line: which diffusers pipeline class does each vidgen
task for a given set of weights, the Hugging Face repo to look for in the local
cache, the defaults the model was made for, and the limits it can really meet
(the frame counts its video autoencoder can produce, the size multiple of its
latents). Capabilities are read from here, so ``vidgen backends`` can list a
family without its weights and without importing diffusers.

Frame rules were measured on diffusers 0.42.1 (tiny random pipelines, see
tests/diffusers_tiny.py): CogVideoX decodes latents in pairs, so only 8k+1
frames come back as asked (4k+1 with an even k comes back 3 frames longer);
LTX-Video 8k+1; Wan and HunyuanVideo 4k+1; Mochi 6k+1; Latte only the
16 frames its temporal position table holds.

Defaults are each pipeline's own (its ``__call__`` defaults, or the sizes its
transformer/UNet config implies), except HunyuanVideo's frames and size: its
pipeline asks for 129 frames at 1280x720; vidgen uses the smaller example of the
diffusers documentation (61 at 512x320). Maximum frames and sizes are the
published limits of each model (model cards, diffusers docs), not measured here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from vidgen.errors import ConfigurationError
from vidgen.types import Task

T2V, I2V, EDIT = Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.EDIT
DTYPES = ("bf16", "fp16", "fp32")


@attrs.frozen
class FrameRule:
    """Frame counts ``multiple * k + offset`` from ``minimum`` up (the cap is in ``Profile``)."""

    multiple: int = 1
    offset: int = 0
    minimum: int = 1

    def allows(self, frames: int, maximum: int) -> bool:
        return (self.minimum <= frames <= maximum
                and (frames - self.offset) % self.multiple == 0)

    def nearest(self, frames: int, maximum: int) -> tuple[int, ...]:
        """The valid counts just below and above ``frames`` (one or two of them)."""
        k = (frames - self.offset) // self.multiple
        near = (self.multiple * k + self.offset, self.multiple * (k + 1) + self.offset)
        return tuple(n for n in near if self.allows(n, maximum))

    def describe(self) -> str:
        if self.multiple == 1:
            return "any number of"
        return f"{self.multiple}k+{self.offset}" if self.offset else f"{self.multiple}k"


@attrs.frozen
class Profile:
    """Defaults a model was made for and the limits it meets (frames, pixels)."""

    frames: int
    height: int
    width: int
    fps: float
    steps: int
    guidance: float
    dtype: str  # one of DTYPES: the precision the weights are published for
    max_frames: int
    max_height: int
    max_width: int


@attrs.frozen
class Repo:
    """A known Hugging Face repo: its pipeline class (model_index.json) and profile changes."""

    class_name: str
    changes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Family:
    """One model family: pipelines per task, default repo, profile, limits."""

    name: str  # vidgen's name for it, also its entry point
    label: str
    repo: str  # the default Hugging Face repo id
    # model_index.json ``_class_name`` -> the pipeline class for each task those weights serve
    weights: Mapping[str, Mapping[Task, str]]
    profile: Profile
    components: tuple[str, ...]  # subfolders of a pipeline directory (for messages)
    frame_rule: FrameRule = FrameRule()
    size_multiple: int = 8
    repos: Mapping[str, Repo] = attrs.field(factory=dict)
    # components kept in float32 whatever the dtype (the published recipe for Wan)
    fp32_components: tuple[str, ...] = ()
    # classes that need a separately loaded motion adapter (AnimateDiff on an SD 1.5 base)
    needs_adapter: frozenset[str] = frozenset()
    motion_adapter: str | None = None

    def class_for(self, repo: str) -> str:
        """The pipeline class of ``repo`` (a known repo) or of the family's default repo."""
        known = self.repos.get(repo) or self.repos.get(self.repo)
        return known.class_name if known is not None else next(iter(self.weights))

    def profile_for(self, repo: str | None) -> Profile:
        known = self.repos.get(repo) if repo is not None else None
        return attrs.evolve(self.profile, **known.changes) if known else self.profile

    def tasks_for(self, class_name: str) -> Mapping[Task, str]:
        try:
            return self.weights[class_name]
        except KeyError:
            raise ConfigurationError(
                f"model_index.json names {class_name!r}, which is not a {self.label} pipeline "
                f"(this family loads {', '.join(self.weights)})") from None


def _same(tasks: Mapping[Task, str], *classes: str) -> dict[str, Mapping[Task, str]]:
    """Weights saved by any of ``classes`` serve every task in ``tasks``."""
    return dict.fromkeys(classes, tasks)


_DIT = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
_UNET = ("scheduler", "text_encoder", "tokenizer", "unet", "vae")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        name="cogvideox", label="CogVideoX", repo="THUDM/CogVideoX-2b",
        weights={**_same({T2V: "CogVideoXPipeline", EDIT: "CogVideoXVideoToVideoPipeline"},
                         "CogVideoXPipeline", "CogVideoXVideoToVideoPipeline"),
                 "CogVideoXImageToVideoPipeline": {I2V: "CogVideoXImageToVideoPipeline"}},
        profile=Profile(frames=49, height=480, width=720, fps=8, steps=50, guidance=6.0,
                        dtype="bf16", max_frames=49, max_height=480, max_width=720),
        components=_DIT, frame_rule=FrameRule(8, 1, 9), size_multiple=16,
        repos={"THUDM/CogVideoX-2b": Repo("CogVideoXPipeline", {"dtype": "fp16"}),
               "THUDM/CogVideoX-5b": Repo("CogVideoXPipeline"),
               "THUDM/CogVideoX-5b-I2V": Repo("CogVideoXImageToVideoPipeline"),
               **{r: Repo(c, {"frames": 81, "height": 768, "width": 1360, "fps": 16,
                              "max_frames": 161, "max_height": 768, "max_width": 1360})
                  for r, c in (("THUDM/CogVideoX1.5-5B", "CogVideoXPipeline"),
                               ("THUDM/CogVideoX1.5-5B-I2V", "CogVideoXImageToVideoPipeline"))}},
    ),
    Family(
        name="ltx-video", label="LTX-Video", repo="Lightricks/LTX-Video",
        weights=_same({T2V: "LTXPipeline", I2V: "LTXImageToVideoPipeline"},
                      "LTXPipeline", "LTXImageToVideoPipeline"),
        profile=Profile(frames=161, height=512, width=704, fps=25, steps=50, guidance=3.0,
                        dtype="bf16", max_frames=257, max_height=1280, max_width=1280),
        components=_DIT, frame_rule=FrameRule(8, 1, 9), size_multiple=32,
    ),
    Family(
        name="wan", label="Wan 2.1", repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        weights={**_same({T2V: "WanPipeline", EDIT: "WanVideoToVideoPipeline"},
                         "WanPipeline", "WanVideoToVideoPipeline"),
                 "WanImageToVideoPipeline": {I2V: "WanImageToVideoPipeline"}},
        profile=Profile(frames=81, height=480, width=832, fps=16, steps=50, guidance=5.0,
                        dtype="bf16", max_frames=81, max_height=832, max_width=832),
        components=_DIT, frame_rule=FrameRule(4, 1, 5), size_multiple=16,
        fp32_components=("vae", "image_encoder"),
        repos={"Wan-AI/Wan2.1-T2V-1.3B-Diffusers": Repo("WanPipeline"),
               "Wan-AI/Wan2.1-T2V-14B-Diffusers": Repo(
                   "WanPipeline", {"max_height": 1280, "max_width": 1280}),
               "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": Repo("WanImageToVideoPipeline"),
               "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": Repo(
                   "WanImageToVideoPipeline", {"height": 720, "width": 1280,
                                               "max_height": 1280, "max_width": 1280})},
    ),
    Family(
        name="hunyuan-video", label="HunyuanVideo", repo="hunyuanvideo-community/HunyuanVideo",
        weights={"HunyuanVideoPipeline": {T2V: "HunyuanVideoPipeline"}},
        profile=Profile(frames=61, height=320, width=512, fps=15, steps=50, guidance=6.0,
                        dtype="bf16", max_frames=129, max_height=1280, max_width=1280),
        components=(*_DIT, "text_encoder_2", "tokenizer_2"), frame_rule=FrameRule(4, 1, 5),
        size_multiple=16,
    ),
    Family(
        name="mochi", label="Mochi 1", repo="genmo/mochi-1-preview",
        weights={"MochiPipeline": {T2V: "MochiPipeline"}},
        profile=Profile(frames=19, height=480, width=848, fps=30, steps=64, guidance=4.5,
                        dtype="bf16", max_frames=163, max_height=848, max_width=848),
        components=_DIT, frame_rule=FrameRule(6, 1, 7), size_multiple=16,
    ),
    Family(
        name="latte", label="Latte", repo="maxin-cn/Latte-1",
        weights={"LattePipeline": {T2V: "LattePipeline"}},
        profile=Profile(frames=16, height=512, width=512, fps=8, steps=50, guidance=7.5,
                        dtype="fp16", max_frames=16, max_height=512, max_width=512),
        components=_DIT, frame_rule=FrameRule(1, 0, 16), size_multiple=16,
    ),
    Family(
        name="animatediff", label="AnimateDiff", repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
        weights=_same({T2V: "AnimateDiffPipeline", EDIT: "AnimateDiffVideoToVideoPipeline"},
                      "AnimateDiffPipeline", "AnimateDiffVideoToVideoPipeline",
                      "StableDiffusionPipeline"),
        profile=Profile(frames=16, height=512, width=512, fps=8, steps=50, guidance=7.5,
                        dtype="fp16", max_frames=32, max_height=768, max_width=768),
        components=(*_UNET, "motion_adapter"),
        needs_adapter=frozenset({"StableDiffusionPipeline"}),
        motion_adapter="guoyww/animatediff-motion-adapter-v1-5-2",
        repos={"stable-diffusion-v1-5/stable-diffusion-v1-5": Repo("StableDiffusionPipeline")},
    ),
    Family(
        name="modelscope-t2v", label="ModelScope text-to-video",
        repo="ali-vilab/text-to-video-ms-1.7b",
        weights=_same({T2V: "TextToVideoSDPipeline", EDIT: "VideoToVideoSDPipeline"},
                      "TextToVideoSDPipeline", "VideoToVideoSDPipeline"),
        profile=Profile(frames=16, height=256, width=256, fps=8, steps=50, guidance=9.0,
                        dtype="fp16", max_frames=64, max_height=1024, max_width=1024),
        components=_UNET,
    ),
    Family(
        name="i2vgen-xl", label="I2VGen-XL", repo="ali-vilab/i2vgen-xl",
        weights={"I2VGenXLPipeline": {I2V: "I2VGenXLPipeline"}},
        profile=Profile(frames=16, height=704, width=1280, fps=16, steps=50, guidance=9.0,
                        dtype="fp16", max_frames=16, max_height=1280, max_width=1280),
        components=(*_UNET, "image_encoder", "feature_extractor"),
    ),
    Family(
        name="svd", label="Stable Video Diffusion",
        repo="stabilityai/stable-video-diffusion-img2vid-xt",
        weights={"StableVideoDiffusionPipeline": {I2V: "StableVideoDiffusionPipeline"}},
        profile=Profile(frames=25, height=576, width=1024, fps=7, steps=25, guidance=3.0,
                        dtype="fp16", max_frames=25, max_height=1024, max_width=1024),
        components=("feature_extractor", "image_encoder", "scheduler", "unet", "vae"),
        repos={"stabilityai/stable-video-diffusion-img2vid": Repo(
                   "StableVideoDiffusionPipeline", {"frames": 14, "max_frames": 14}),
               "stabilityai/stable-video-diffusion-img2vid-xt": Repo(
                   "StableVideoDiffusionPipeline")},
    ),
)}


def get_family(name: str) -> Family:
    """The family called ``name``; ConfigurationError naming the choices otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown diffusers family {name!r}; choose from {', '.join(FAMILIES)}") from None


def family_of_class(class_name: str) -> Family | None:
    """The family whose weights model_index.json ``_class_name`` names (None if no family's)."""
    for family in FAMILIES.values():
        if class_name in family.weights and class_name not in family.needs_adapter:
            return family
    return None


def family_of_repo(repo: str) -> Family | None:
    """The family of a known Hugging Face repo id (None if not in the table)."""
    for family in FAMILIES.values():
        if repo == family.repo or repo in family.repos:
            return family
    return None
