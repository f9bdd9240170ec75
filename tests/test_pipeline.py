"""The fail-closed chain: every failing stage leaves no file and raises its typed error."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vidgen
from vidgen import errors
from vidgen.backends.base import register_backend
from vidgen.pipeline import Pipeline
from vidgen.provenance.c2pa import SoftBinding, read_soft_binding
from vidgen.provenance.keys import CallbackSigner, DevKeys, local_key_callback
from vidgen.types import PromptDecision, Video

from .conftest import GradientBackend


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def pipe(gradient_backend: GradientBackend, dev_keys: DevKeys) -> Pipeline:
    return Pipeline(gradient_backend, signer=dev_keys.signer())


def test_generate_writes_signed_mp4(pipe: Pipeline, tmp_path: Path, anchors: Path) -> None:
    out = tmp_path / "out.mp4"
    res = pipe.generate("anything", num_frames=6, seed=1, output=out)
    assert res.path == out.absolute() and out.is_file()
    assert _files(tmp_path) == ["out.mp4"]  # no temporaries left
    assert res.video.frames.shape == (6, 32, 32, 3)
    assert res.backend == "gradient"
    assert res.watermark_id is not None and 0 <= res.watermark_id < 2**32
    labels = [a["label"] for a in res.manifest["assertions"]]
    assert "c2pa.actions.v2" in labels and "org.vidgen.generation" in labels
    assert "c2pa.soft-binding" in labels and "org.vidgen.watermark" not in labels
    gen = next(a["data"] for a in res.manifest["assertions"]
               if a["label"] == "org.vidgen.generation")
    assert gen["seed"] == 1 and gen["model"]["id"] == "test/gradient"
    assert "prompt" not in gen and len(gen["prompt_sha256"]) == 64
    assert set(res.timings) >= {"sample", "encode", "sign", "commit"}
    report = vidgen.verify(out, trust=anchors)
    assert report.verdict == "confirmed"
    assert report.sha256 == res.sha256


def test_prompt_opt_in(gradient_backend: GradientBackend, dev_keys: DevKeys,
                       tmp_path: Path) -> None:
    pipe = Pipeline(gradient_backend, signer=dev_keys.signer(), include_prompt=True)
    res = pipe.generate("a secret prompt", output=tmp_path / "o.mp4")
    report = vidgen.verify(res.path)
    assert report.c2pa is not None and report.c2pa.manifest is not None
    gen = next(a["data"] for a in report.c2pa.manifest["assertions"]
               if a["label"] == "org.vidgen.generation")
    assert gen["prompt"] == "a secret prompt"


def test_same_seed_same_frames(gradient_backend: GradientBackend, dev_keys: DevKeys,
                               tmp_path: Path) -> None:
    class Unchanged:  # every output gets a fresh id, so compare the frames before the mark
        name = "unchanged"

        def embed(self, video: Video, payload: int) -> Video:
            return video

    pipe = Pipeline(gradient_backend, signer=dev_keys.signer(), watermarker=Unchanged())
    a = pipe.generate("x", seed=5, output=tmp_path / "a.mp4")
    b = pipe.generate("x", seed=5, output=tmp_path / "b.mp4")
    assert a.video == b.video
    assert a.watermark_id != b.watermark_id


# --- fail closed -------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def _assert_nothing_written(directory: Path) -> None:
    assert _files(directory) == [], _files(directory)


def test_backend_that_raises(dev_keys: DevKeys, tmp_path: Path) -> None:
    class Broken(GradientBackend):
        def sample(self, request: Any, progress: Any = None) -> Video:
            raise Boom("model exploded")

    pipe = Pipeline(Broken(), signer=dev_keys.signer())
    with pytest.raises(errors.BackendError, match="model exploded") as info:
        pipe.generate("x", output=tmp_path / "o.mp4")
    assert info.value.stage == "sample"
    assert isinstance(info.value.__cause__, Boom)
    _assert_nothing_written(tmp_path)


def test_backend_returning_wrong_shape(dev_keys: DevKeys, tmp_path: Path) -> None:
    class Wrong(GradientBackend):
        def sample(self, request: Any, progress: Any = None) -> Video:
            return Video(np.zeros((2, 8, 8, 3), np.uint8))

    with pytest.raises(errors.BackendError, match="expected"):
        Pipeline(Wrong(), signer=dev_keys.signer()).generate("x", output=tmp_path / "o.mp4")
    _assert_nothing_written(tmp_path)


def test_signer_that_raises(gradient_backend: GradientBackend, dev_keys: DevKeys,
                            tmp_path: Path) -> None:
    def hsm_down(data: bytes) -> bytes:
        raise Boom("HSM unreachable")

    signer = CallbackSigner(hsm_down, dev_keys.signer_cert.read_bytes())
    pipe = Pipeline(gradient_backend, signer=signer)
    with pytest.raises(errors.SigningError, match="HSM unreachable") as info:
        pipe.generate("x", output=tmp_path / "o.mp4")
    assert isinstance(info.value.__cause__, Boom)
    _assert_nothing_written(tmp_path)


def test_callback_signer_works(gradient_backend: GradientBackend, dev_keys: DevKeys,
                               tmp_path: Path, anchors: Path) -> None:
    signer = CallbackSigner(local_key_callback(dev_keys.signer_key.read_bytes()),
                            dev_keys.signer_cert.read_bytes())
    res = Pipeline(gradient_backend, signer=signer).generate("x", output=tmp_path / "o.mp4")
    assert vidgen.verify(res.path, trust=anchors).verdict == "confirmed"


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_disk_full(pipe: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   where: str) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, where, full)
    with pytest.raises(errors.OutputError, match="No space left"):
        pipe.generate("x", output=tmp_path / "o.mp4")
    monkeypatch.undo()
    _assert_nothing_written(tmp_path)


def test_encoder_failure_mid_write(pipe: Pipeline, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import vidgen.video_io as vio

    def half_write(video: Video, path: Path, **kw: Any) -> Path:
        Path(path).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vio, "write_video", half_write)
    with pytest.raises(errors.MediaError):
        pipe.generate("x", output=tmp_path / "o.mp4")
    _assert_nothing_written(tmp_path)


def test_existing_output_untouched_on_failure(dev_keys: DevKeys, tmp_path: Path) -> None:
    class Broken(GradientBackend):
        def sample(self, request: Any, progress: Any = None) -> Video:
            raise Boom("no")

    out = tmp_path / "o.mp4"
    out.write_bytes(b"previous")
    with pytest.raises(errors.BackendError):
        Pipeline(Broken(), signer=dev_keys.signer()).generate("x", output=out)
    assert out.read_bytes() == b"previous"
    assert _files(tmp_path) == ["o.mp4"]


def test_prompt_gate_refuses_before_sampling(gradient_backend: GradientBackend,
                                             dev_keys: DevKeys, tmp_path: Path) -> None:
    def gate(text: str) -> PromptDecision:
        if "forbidden" in text:
            return PromptDecision(False, "test", "contains a forbidden word", ("forbidden",))
        return PromptDecision(True)

    pipe = Pipeline(gradient_backend, signer=dev_keys.signer(), prompt_gates=[gate])
    with pytest.raises(errors.PolicyViolation) as info:
        pipe.generate("ok", negative_prompt="forbidden", output=tmp_path / "o.mp4")
    assert info.value.category == "test"
    assert gradient_backend.calls == 0
    _assert_nothing_written(tmp_path)


def test_likeness_scanner_refuses(gradient_backend: GradientBackend, dev_keys: DevKeys,
                                  tmp_path: Path) -> None:
    def scanner(video: Video, *, where: str, task: str) -> dict[str, Any] | None:
        if where == "output":
            raise errors.LikenessViolation("protected person in output")
        return None

    pipe = Pipeline(gradient_backend, signer=dev_keys.signer(), likeness_scanners=[scanner])
    with pytest.raises(errors.LikenessViolation):
        pipe.generate("x", output=tmp_path / "o.mp4")
    _assert_nothing_written(tmp_path)


def test_watermarker_failure_and_success(gradient_backend: GradientBackend, dev_keys: DevKeys,
                                         tmp_path: Path) -> None:
    class BadMark:
        name = "bad"

        def embed(self, video: Video, payload: int) -> Video:
            raise Boom("mark failed")

    with pytest.raises(errors.WatermarkError):
        Pipeline(gradient_backend, signer=dev_keys.signer(), watermarker=BadMark()).generate(
            "x", output=tmp_path / "o.mp4")
    _assert_nothing_written(tmp_path)

    class LsbMark:  # a trivial marker that records the payload, to test the slot
        name = "lsb-test"

        def embed(self, video: Video, payload: int) -> Video:
            f = video.frames.copy()
            f[0, 0, 0, 0] = payload & 0xFF
            return Video(f, video.fps)

    res = Pipeline(gradient_backend, signer=dev_keys.signer(), watermarker=LsbMark()).generate(
        "x", output=tmp_path / "o.mp4")
    assert res.watermark_id is not None
    assert res.video.frames[0, 0, 0, 0] == res.watermark_id & 0xFF
    binding = read_soft_binding(res.manifest)
    assert binding == SoftBinding("org.vidgen.wm.lsb-test", "lsb-test", res.watermark_id)


def test_store_failure_removes_committed_output(gradient_backend: GradientBackend,
                                                dev_keys: DevKeys, tmp_path: Path) -> None:
    class Mark:
        name = "m"

        def embed(self, video: Video, payload: int) -> Video:
            return video

    class BrokenStore:
        def record(self, *args: Any) -> None:
            raise Boom("database locked")

    pipe = Pipeline(gradient_backend, signer=dev_keys.signer(), watermarker=Mark(),
                    store=BrokenStore())
    with pytest.raises(errors.StoreError):
        pipe.generate("x", output=tmp_path / "o.mp4")
    _assert_nothing_written(tmp_path)


def test_progress_callback_cancels(pipe: Pipeline, tmp_path: Path) -> None:
    def cancel(done: int, total: int) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.generate("x", output=tmp_path / "o.mp4", progress=cancel)
    _assert_nothing_written(tmp_path)


# --- requests and inputs ---------------------------------------------------------------


def test_capabilities_checked_before_sampling(gradient_backend: GradientBackend,
                                              dev_keys: DevKeys, tmp_path: Path) -> None:
    pipe = Pipeline(gradient_backend, signer=dev_keys.signer())
    with pytest.raises(errors.UnsupportedTask):
        pipe.generate("x", num_frames=1000, output=tmp_path / "o.mp4")
    with pytest.raises(errors.UnsupportedTask, match="divisible"):
        pipe.generate("x", width=33, output=tmp_path / "o.mp4")
    assert gradient_backend.calls == 0
    _assert_nothing_written(tmp_path)


def test_scene_backend_refuses_editing(dev_keys: DevKeys, tmp_path: Path) -> None:
    pipe = Pipeline.from_backend("scene", signer=dev_keys.signer())
    clip = Video(np.zeros((4, 16, 16, 3), np.uint8))
    with pytest.raises(errors.UnsupportedTask, match="does not support task 'edit'"):
        pipe.edit(clip, "make it red", output=tmp_path / "o.mp4")


def test_bad_output_paths(pipe: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError):
        pipe.generate("x", output=tmp_path / "o.avi")
    with pytest.raises(errors.ConfigurationError):
        pipe.generate("x", output=tmp_path / "missing-dir" / "o.mp4")


def test_unknown_backend_lists_known() -> None:
    with pytest.raises(errors.UnknownBackend, match="scene"):
        Pipeline.from_backend("no-such-backend")


def test_edit_records_parent_ingredient(pipe: Pipeline, tmp_path: Path, anchors: Path) -> None:
    first = pipe.generate("x", output=tmp_path / "first.mp4")
    edited = pipe.edit(first.path, "y", strength=0.5, output=tmp_path / "edited.mp4")
    report = vidgen.verify(edited.path, trust=anchors)
    assert report.verdict == "confirmed"
    assert report.c2pa is not None and report.c2pa.manifest is not None
    ingredients = report.c2pa.manifest["ingredients"]
    assert [i["relationship"] for i in ingredients] == ["parentOf"]
    assert ingredients[0]["title"] == "first.mp4"
    assert ingredients[0].get("active_manifest")  # the input's own manifest carried over
    actions = next(a for a in report.c2pa.manifest["assertions"]
                   if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]


def test_image_to_video_records_input_ingredient(pipe: Pipeline, tmp_path: Path) -> None:
    image = np.full((32, 32, 3), 200, np.uint8)
    res = pipe.image_to_video(image, "animate", output=tmp_path / "i2v.mp4")
    report = vidgen.verify(res.path)
    assert report.c2pa is not None and report.c2pa.manifest is not None
    ingredients = report.c2pa.manifest["ingredients"]
    assert [(i["relationship"], i["format"]) for i in ingredients] == [("inputTo", "image/png")]


def test_bad_input_shapes(pipe: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError):
        pipe.image_to_video(np.zeros((4, 4), np.uint8), "x", output=tmp_path / "o.mp4")
    clip = Video(np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(errors.ConfigurationError, match="mask shape"):
        pipe.inpaint(clip, np.zeros((5, 5), bool), "x", output=tmp_path / "o.mp4")
    with pytest.raises(errors.ConfigurationError, match="strength"):
        pipe.edit(clip, "x", strength=1.5, output=tmp_path / "o.mp4")


def test_runtime_registered_plugin(dev_keys: DevKeys, tmp_path: Path) -> None:
    register_backend("gradient-test", GradientBackend)
    assert "gradient-test" in [b.name for b in vidgen.list_backends()]
    pipe = Pipeline.from_backend("gradient-test", signer=dev_keys.signer())
    assert pipe.generate("x", output=tmp_path / "o.mp4").path.is_file()


def test_copy_signing_path_when_in_place_unavailable(
        pipe: Pipeline, tmp_path: Path, anchors: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidgen.provenance import c2pa_inplace

    monkeypatch.setattr(c2pa_inplace, "available", lambda: False)
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    assert _files(tmp_path) == ["o.mp4"]
    assert vidgen.verify(res.path, trust=anchors).verdict == "confirmed"


def test_in_place_signing_is_used(pipe: Pipeline, tmp_path: Path) -> None:
    from vidgen.provenance import c2pa_inplace

    assert c2pa_inplace.available()  # the pinned c2pa-python exports the embeddable API
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    from .mp4boxes import C2PA_UUID, top_level_boxes

    data = res.path.read_bytes()
    kinds = [(k, data[o + 8:o + 24] == C2PA_UUID) for k, o, _ in top_level_boxes(data)]
    assert kinds[-1] == ("uuid", True)  # manifest box appended after mdat
