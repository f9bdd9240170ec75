"""The diffusers adapters on tiny random pipelines, offline, through the whole signed chain.

Each pipeline is built in-process from a tiny random config (tests/diffusers_tiny.py),
wrapped with ``DiffusersBackend.from_pipeline`` and run on the CPU with 2 steps;
the local-directory and Hugging Face cache paths load a saved tiny pipeline with
``local_files_only``. Sockets are blocked for the whole module.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import vidgen  # noqa: E402
from vidgen.backends.base import _builtin_factories, load_backend  # noqa: E402
from vidgen.backends.diffusers import FAMILIES, DiffusersBackend  # noqa: E402
from vidgen.backends.diffusers.factories import ENTRY_POINTS  # noqa: E402
from vidgen.backends.diffusers.families import family_of_class, family_of_repo  # noqa: E402
from vidgen.backends.diffusers.weights import locate  # noqa: E402
from vidgen.errors import BackendError, ConfigurationError, UnsupportedTask  # noqa: E402
from vidgen.pipeline import Pipeline  # noqa: E402
from vidgen.provenance.keys import DevKeys  # noqa: E402
from vidgen.types import GenerationRequest, Inputs, Task, Video  # noqa: E402

from .diffusers_tiny import TINY  # noqa: E402

torch.set_num_threads(1)

PROMPT = "a red circle moving right"
T2V, I2V, EDIT = Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.EDIT
WAN_KWARGS = TINY["wan-t2v"].call_kwargs


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Hub off, an empty HF cache, and any network connection is an error."""
    home = tmp_path_factory.mktemp("hf_home")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(home))
        for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
            mp.delenv(var, raising=False)
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield home


def _backend(name: str, **options: Any) -> DiffusersBackend:
    tiny = TINY[name]
    return DiffusersBackend.from_pipeline(
        tiny.build(), family=tiny.family, model_id=f"tiny/{name}", model_version="tiny-1",
        call_kwargs=tiny.call_kwargs, steps=2, **options)


def _image(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)],
                    axis=-1).astype(np.uint8)


def _clip(frames: int, size: int) -> Video:
    return Video(np.stack([np.roll(_image(size), 2 * i, axis=1) for i in range(frames)]), fps=8)


def _request(name: str, **changes: Any) -> GenerationRequest:
    tiny = TINY[name]
    inputs = (Inputs(image=_image(tiny.size)) if tiny.task == I2V else
              Inputs(video=_clip(tiny.frames, tiny.size)) if tiny.task == EDIT else Inputs())
    fields: dict[str, Any] = {"prompt": PROMPT, "task": tiny.task, "num_frames": tiny.frames,
                              "height": tiny.size, "width": tiny.size, "seed": 1,
                              "inputs": inputs,
                              "strength": 0.7 if tiny.task == EDIT else None}
    return GenerationRequest(**{**fields, **changes})


# --- every pipeline, end to end --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
def test_signed_mp4_from_every_pipeline(name: str, dev_keys: DevKeys, anchors: Path,
                                        tmp_path: Path) -> None:
    tiny = TINY[name]
    pipe = Pipeline(_backend(name), signer=dev_keys.signer())
    out = tmp_path / f"{name}.mp4"
    size = {"height": tiny.size, "width": tiny.size}
    if tiny.task == T2V:
        res = pipe.generate(PROMPT, num_frames=tiny.frames, seed=3, output=out, **size)
    elif tiny.task == I2V:
        res = pipe.image_to_video(_image(tiny.size), PROMPT, num_frames=tiny.frames, seed=3,
                                  output=out)
    else:
        res = pipe.edit(_clip(tiny.frames, tiny.size), PROMPT, strength=0.7, seed=3, output=out)
    assert res.video.frames.shape == (tiny.frames, tiny.size, tiny.size, 3)
    assert res.video.fps == FAMILIES[tiny.family].profile.fps
    report = vidgen.verify(out, trust=anchors)
    assert report.verdict == "confirmed"
    gen = next(a["data"] for a in res.manifest["assertions"]
               if a["label"] == "org.vidgen.generation")
    assert gen["model"] == {"id": f"tiny/{name}", "version": "tiny-1"}


# --- determinism, progress, cancellation -----------------------------------------------------


@pytest.mark.parametrize("name", ["wan-t2v", "i2vgen-xl"])
def test_same_seed_same_frames(name: str) -> None:
    # I2VGen-XL draws its image latents from the global RNG; the adapter seeds and restores it
    backend = _backend(name)
    assert backend.capabilities().deterministic
    request = _request(name, seed=5)
    first = backend.sample(request)
    torch.rand(7)  # disturb the global RNG between the calls
    state = torch.get_rng_state()
    assert backend.sample(request) == first
    assert torch.equal(torch.get_rng_state(), state)  # the call left the global RNG alone
    assert backend.sample(attrs.evolve(request, seed=6)) != first


# callback_on_step_end, the legacy callback, and neither (a scheduler.step wrapper)
@pytest.mark.parametrize("name", ["wan-t2v", "modelscope-t2v", "i2vgen-xl"])
def test_progress_reports_each_step(name: str) -> None:
    backend = _backend(name)
    seen: list[tuple[int, int]] = []
    backend.sample(_request(name), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert "step" not in vars(backend.load().scheduler)  # the wrapper is gone again


class Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["wan-t2v", "modelscope-t2v", "i2vgen-xl"])
def test_progress_exception_cancels_and_propagates(name: str) -> None:
    backend = _backend(name)
    seen: list[int] = []

    def stop(done: int, total: int) -> None:
        seen.append(done)
        raise Stop

    with pytest.raises(Stop):
        backend.sample(_request(name), progress=stop)
    assert seen == [1]  # no step after the cancel
    backend.sample(_request(name))  # the backend still works


def test_cancelled_generation_leaves_no_file(dev_keys: DevKeys, tmp_path: Path) -> None:
    pipe = Pipeline(_backend("wan-t2v"), signer=dev_keys.signer())

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(BackendError) as info:
        pipe.generate(PROMPT, num_frames=5, height=16, width=16, output=tmp_path / "o.mp4",
                      progress=stop)
    assert isinstance(info.value.__cause__, Stop)
    assert list(tmp_path.iterdir()) == []


# --- refusals --------------------------------------------------------------------------------


def test_frame_counts_the_model_cannot_make_are_refused(dev_keys: DevKeys,
                                                        tmp_path: Path) -> None:
    backend = _backend("wan-t2v")
    with pytest.raises(UnsupportedTask, match=r"4k\+1 frames .*6 requested; nearest: 5 or 9"):
        backend.sample(_request("wan-t2v", num_frames=6))
    with pytest.raises(UnsupportedTask, match="keeps the input's 5 frames"):
        backend.sample(_request("wan-v2v", num_frames=9))
    with pytest.raises(UnsupportedTask, match=r"4k\+1.*6 requested"):
        backend.sample(_request("wan-v2v", num_frames=None, inputs=Inputs(video=_clip(6, 16))))
    pipe = Pipeline(backend, signer=dev_keys.signer())
    with pytest.raises(UnsupportedTask):
        pipe.generate(PROMPT, num_frames=6, height=16, width=16, output=tmp_path / "o.mp4")
    with pytest.raises(UnsupportedTask, match="divisible by 16"):
        pipe.generate(PROMPT, num_frames=5, height=24, width=16, output=tmp_path / "o.mp4")
    assert list(tmp_path.iterdir()) == []


def test_tasks_outside_the_weights_are_refused() -> None:
    backend = _backend("wan-t2v")  # text-to-video weights: text-to-video and edit
    assert backend.capabilities().tasks == {T2V, EDIT}
    with pytest.raises(UnsupportedTask, match="image_to_video"):
        backend.sample(_request("wan-i2v"))
    with pytest.raises(UnsupportedTask, match="stylize"):
        backend.sample(_request("wan-v2v", task=Task.STYLIZE))
    with pytest.raises(UnsupportedTask, match="no negative prompt"):
        _backend("svd").sample(_request("svd", negative_prompt="blurry"))
    with pytest.raises(ConfigurationError, match="strength applies to edit"):
        backend.sample(_request("wan-t2v", strength=0.5))


@pytest.mark.parametrize(("where", "extra", "words"), [
    ("request", {"nonsense": 1}, "not an argument of this pipeline"),
    ("request", {"output_type": "pil"}, "set by vidgen"),
    ("request", {"prompt_embeds": 1}, "around the safety checks"),
    ("request", {"prompt_template": {"template": "{}"}}, "around the safety checks"),
    ("backend", {"negative_prompt_embeds": 1}, "around the safety checks"),
    ("backend", {"generator": None}, "set by vidgen"),
])
def test_extra_arguments_cannot_bypass_the_chain(where: str, extra: dict[str, Any],
                                                 words: str) -> None:
    if where == "request":
        backend, request = _backend("hunyuan-video"), _request("hunyuan-video", options=extra)
    else:
        backend = DiffusersBackend.from_pipeline(TINY["wan-t2v"].build(), model_id="tiny/wan",
                                                 call_kwargs={**WAN_KWARGS, **extra})
        request = _request("wan-t2v")
    with pytest.raises(ConfigurationError, match=words):
        backend.sample(request)


@pytest.mark.parametrize(("options", "words"), [
    ({"dtype": "fp8"}, "auto, bf16, fp16, fp32"),
    ({"offload": "disk"}, "none, model, sequential, group"),
    ({"offload": "model", "device": "cpu"}, "needs a CUDA device"),
    ({"device": "warp-drive"}, "not a torch device"),
    ({"steps": 0}, "steps must be"),
    ({"guidance": -1.0}, "guidance must be"),
    ({"attention": "flash_hub"}, "hub kernels are refused"),
    ({"attention": "fastest"}, "native"),
    ({"lora": "style.bin"}, "local .safetensors"),
    ({"lora": "/nonexistent/style.safetensors"}, "does not exist"),
    ({"motion_adapter": "guoyww/x"}, "motion_adapter applies to AnimateDiff"),
    ({"sampler": "euler"}, "unknown diffusers option"),
])
def test_bad_options_are_configuration_errors(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        DiffusersBackend(family="cogvideox", **options)


def test_unknown_family_and_unsupported_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="choose from cogvideox, ltx-video"):
        DiffusersBackend(family="sora")
    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"\0" * 16)
    with pytest.raises(ConfigurationError, match="no LoRA loader"):
        _backend("svd", lora=str(lora))
    with pytest.raises(ConfigurationError, match="has no enable_tiling"):
        _backend("svd", vae_tiling=True)
    with pytest.raises(ConfigurationError, match="not a pipeline of a known family"):
        DiffusersBackend.from_pipeline(object(), model_id="x")
    with pytest.raises(ConfigurationError, match="in its own dtype"):
        _backend("svd", dtype="bf16")


# --- weights on this machine -----------------------------------------------------------------


def test_missing_directory_lists_and_then_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "CogVideoX-2b"
    backend = DiffusersBackend(missing, family="cogvideox")
    caps = backend.capabilities()  # listing works without weights
    assert (caps.model_id, caps.model_version) == ("CogVideoX-2b", "missing")
    with pytest.raises(ConfigurationError) as info:
        backend.sample(GenerationRequest(prompt=PROMPT, num_frames=9, height=16, width=16))
    message = info.value.message
    assert str(missing) in message and "model_index.json" in message
    assert "huggingface-cli download THUDM/CogVideoX-2b --local-dir DIR" in message
    with pytest.raises(ConfigurationError, match=str(tmp_path / "unknown")):
        DiffusersBackend(tmp_path / "unknown")  # no weights and no family: nothing to list
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"has no model_index\.json"):
        DiffusersBackend(tmp_path / "empty", family="wan")


def test_cache_miss_names_the_repo_and_the_cache(offline: Path) -> None:
    backend = load_backend("ltx-video")
    assert backend.capabilities().tasks == {T2V, I2V}
    with pytest.raises(ConfigurationError) as info:
        backend.sample(GenerationRequest(prompt=PROMPT, num_frames=9, height=32, width=32))
    assert "'Lightricks/LTX-Video'" in info.value.message
    assert str(offline / "hub") in info.value.message


@pytest.fixture(scope="module")
def saved_cogvideox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "CogVideoX-tiny"
    TINY["cogvideox-t2v"].build().save_pretrained(path)
    return path


COG_KWARGS = TINY["cogvideox-t2v"].call_kwargs


def test_local_directory_loads_lazily_and_serves_every_task(saved_cogvideox: Path) -> None:
    backend = DiffusersBackend(saved_cogvideox, call_kwargs=COG_KWARGS, steps=2)
    caps = backend.capabilities()
    assert backend.family.name == "cogvideox" and caps.tasks == {T2V, EDIT}
    assert caps.model_id == "CogVideoX-tiny" and caps.model_version.startswith("sha256:")
    assert DiffusersBackend(saved_cogvideox).model_version == caps.model_version  # stable
    assert backend._pipe is None  # nothing loaded until the first sample
    made = backend.sample(_request("cogvideox-t2v"))
    t2v = backend.load(T2V)
    edited = backend.sample(_request("cogvideox-v2v", inputs=Inputs(video=made)))
    v2v = backend.load(EDIT)
    assert type(v2v).__name__ == "CogVideoXVideoToVideoPipeline"
    assert v2v.transformer is t2v.transformer  # one copy of the weights
    assert edited.frames.shape == made.frames.shape == (9, 16, 16, 3)


def test_half_precision_keeps_fp32_components_in_float32(
        saved_cogvideox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Wan's recipe (VAE and image encoder in float32), tried on the tiny CogVideoX: Wan's
    # own transformer loads only with accelerate installed
    wan_like = attrs.evolve(FAMILIES["cogvideox"], fp32_components=("vae", "image_encoder"))
    monkeypatch.setitem(FAMILIES, "cogvideox", wan_like)
    pipe = DiffusersBackend(saved_cogvideox, dtype="bf16").load()
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.vae.dtype == torch.float32


def test_wan_without_accelerate_says_what_to_install(tmp_path: Path) -> None:
    if importlib.util.find_spec("accelerate") is not None:
        pytest.skip("accelerate is installed")
    path = tmp_path / "Wan-tiny"
    TINY["wan-t2v"].build().save_pretrained(path)
    with pytest.raises(ConfigurationError, match=r"accelerate: pip install 'vidgen\[diffusers\]'"):
        DiffusersBackend(path).load()


def test_hf_cache_snapshot_and_download_metadata(saved_cogvideox: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--THUDM--CogVideoX-2b"
    shutil.copytree(saved_cogvideox, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    backend = load_backend("cogvideox", call_kwargs=COG_KWARGS, steps=2)
    caps = backend.capabilities()
    assert (caps.model_id, caps.model_version) == ("THUDM/CogVideoX-2b", commit)
    assert backend.sample(_request("cogvideox-t2v")).frames.shape == (9, 16, 16, 3)
    # a directory made by `huggingface-cli download --local-dir` carries its commit
    local = tmp_path / "downloaded"
    shutil.copytree(saved_cogvideox, local)
    meta = local / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "model_index.json.metadata").write_text(f"{commit}\netag\n1700000000.0\n")
    found = locate(str(local))
    assert found is not None and found.version == commit


def test_animatediff_on_a_stable_diffusion_base_with_a_motion_adapter(tmp_path: Path) -> None:
    tiny = TINY["animatediff-t2v"].build()
    base, adapter = tmp_path / "sd15-tiny", tmp_path / "motion-tiny"
    diffusers.StableDiffusionPipeline(
        vae=tiny.vae, text_encoder=tiny.text_encoder, tokenizer=tiny.tokenizer, unet=tiny.unet,
        scheduler=tiny.scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False).save_pretrained(base)
    tiny.motion_adapter.save_pretrained(adapter)
    with pytest.raises(ConfigurationError, match=str(tmp_path / "nowhere")):
        DiffusersBackend(base, family="animatediff", motion_adapter=tmp_path / "nowhere").load()
    backend = DiffusersBackend(base, family="animatediff", motion_adapter=adapter, steps=2)
    assert backend.capabilities().tasks == {T2V, EDIT}
    assert "+motion:sha256:" in backend.model_version
    assert backend.sample(_request("animatediff-t2v")).frames.shape == (2, 16, 16, 3)
    pipe = backend.load()
    assert type(pipe).__name__ == "AnimateDiffPipeline"
    assert pipe.scheduler.config.beta_schedule == "linear"  # the AnimateDiff recipe
    with pytest.raises(ConfigurationError, match="not a video family"):
        DiffusersBackend(base)  # an image model: only AnimateDiff, asked by name, takes it


# --- registry, imports, table ----------------------------------------------------------------


def test_entry_points_match_pyproject_and_builtins() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["vidgen.backends"]
    assert {k: declared[k] for k in ENTRY_POINTS} == ENTRY_POINTS
    assert set(ENTRY_POINTS) == {"diffusers", *FAMILIES}
    assert _builtin_factories().items() >= ENTRY_POINTS.items()


def test_import_and_listing_do_not_import_diffusers(tmp_path: Path) -> None:
    code = ("import sys, vidgen, vidgen.backends.diffusers\n"
            "from vidgen.backends.base import load_backend\n"
            "from vidgen.backends.diffusers.factories import ENTRY_POINTS\n"
            "caps = [load_backend(n).capabilities() for n in ENTRY_POINTS]\n"
            "print(len(caps), sorted(m for m in ('diffusers', 'transformers', 'PIL') "
            "if m in sys.modules))\n")
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split("\n")[0] == f"{len(ENTRY_POINTS)} []"


def test_family_table_is_consistent() -> None:
    for family in FAMILIES.values():
        assert family_of_repo(family.repo) is family
        assert family.class_for(family.repo) in family.weights
        for repo in (family.repo, *family.repos):
            p = family.profile_for(repo)
            assert family.frame_rule.allows(p.frames, p.max_frames), (family.name, repo)
            assert p.height % family.size_multiple == 0 == p.width % family.size_multiple
            assert p.height <= p.max_height and p.width <= p.max_width
        for class_name, tasks in family.weights.items():
            assert hasattr(diffusers, class_name)
            assert all(hasattr(diffusers, c) for c in tasks.values())
            if class_name not in family.needs_adapter:
                assert family_of_class(class_name) is family
    for name, tiny in TINY.items():  # the tiny requests obey the same rules
        family = FAMILIES[tiny.family]
        assert family.frame_rule.allows(tiny.frames, family.profile.max_frames), name
        assert tiny.size % family.size_multiple == 0, name
