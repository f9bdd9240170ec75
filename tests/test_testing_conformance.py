"""vidgen.testing: the conformance suite passes good backends and fails broken ones on the
check that names what is broken."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import vidgen.testing
from vidgen import errors
from vidgen.backends import base
from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.testing import (
    CHECK_NAMES,
    BackendConformance,
    CheckStatus,
    ConformanceError,
    ConformanceReport,
    ConformanceSuite,
    check_backend,
)
from vidgen.types import GenerationRequest, Task, Video

from .conftest import GradientBackend

SAMPLE_CHECKS = {n for n in CHECK_NAMES if n.startswith("sample[")}


def _failed(report: ConformanceReport) -> set[str]:
    return {c.name for c in report.failures}


# --- good backends ---------------------------------------------------------------------


def test_scene_backend_conforms() -> None:
    report = check_backend("scene")
    assert report.ok, report.summary()
    assert report.backend == "scene"
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert report["registry"].passed and "built in" in report["registry"].message
    assert report["pipeline"].passed and "vidgen/scene" in report["pipeline"].message
    assert report["determinism"].passed
    # scene does text-to-video only: the other tasks are skipped, not failed
    assert {c.name for c in report.skipped} == SAMPLE_CHECKS - {"sample[text_to_video]"}
    report.raise_for_failures()  # no exception
    assert report.to_dict()["ok"] is True


def test_gradient_backend_conforms_on_every_task() -> None:
    report = check_backend(GradientBackend)
    assert report.ok, report.summary()
    assert all(report[n].passed for n in SAMPLE_CHECKS)
    assert report["sample[storyboard]"].message.startswith("8x16x16")  # 2 segments x 4 frames
    assert report["registry"].skipped  # no name given


def test_runtime_registration_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base._registered, "gradient",
                        ("runtime", "tests.conftest:GradientBackend", GradientBackend))
    report = check_backend("gradient", only=["registry", "protocol"])
    assert [c.name for c in report.checks] == ["protocol", "registry"]
    assert report.ok, report.summary()
    assert "registered at runtime" in report["registry"].message


class TestGradientConformance(BackendConformance):
    """The pytest form: one test per check."""

    backend_factory = GradientBackend
    conformance_options = {"num_frames": 3, "height": 16, "width": 24}  # noqa: RUF012


# --- broken backends -------------------------------------------------------------------


class WrongFrameCount(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        video = super().sample(request, progress)
        return Video(np.concatenate([video.frames, video.frames[-1:]]), video.fps)


class Nondeterministic(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        video = super().sample(request, progress)
        noise = np.random.default_rng().integers(0, 4, video.frames.shape, dtype=np.uint8)
        return Video(video.frames ^ noise, video.fps)


class IgnoresSeed(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        return super().sample(attrs.evolve(request, seed=0), progress)


class IgnoresCancellation(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        def swallow(done: int, total: int) -> None:
            if progress is not None:
                with contextlib.suppress(Exception):
                    progress(done, total)

        return super().sample(request, swallow)


class WrapsCancellation(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        try:
            return super().sample(request, progress)
        except Exception as exc:
            raise errors.BackendError("sampling failed") from exc


class NoProgress(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        return super().sample(request, None)


class WritesFile(GradientBackend):
    """Caches every clip as .npy under ``cache_dir``."""

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        video = super().sample(request, progress)
        np.save(Path(self.options["cache_dir"]) / f"clip-{request.seed}.npy", video.frames)
        return video


class WritesThroughChild(GradientBackend):
    """A write Python's audit hooks cannot see (a child process), into the working dir."""

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        subprocess.run(["touch", "made-by-child"], check=True)
        return super().sample(request, progress)


class ReadsKeys(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        path = os.environ.get("VIDGEN_WATERMARK_KEY_FILE")
        if path and os.path.exists(path):
            Path(path).read_bytes()
        return super().sample(request, progress)


class KeyedOutput(GradientBackend):
    """Seeds itself from the environment's watermark key."""

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        key = os.environ.get("VIDGEN_WATERMARK_KEY", "")
        salt = int.from_bytes(hashlib.sha256(key.encode()).digest()[:2], "big")
        return super().sample(attrs.evolve(request, seed=request.seed + salt), progress)


class SneakilyKeyedOutput(GradientBackend):
    """The same through ``os.environb``, which the variable watch does not see."""

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        key = os.environb.get(b"VIDGEN_WATERMARK_KEY", b"")
        salt = int.from_bytes(hashlib.sha256(key).digest()[:2], "big")
        return super().sample(attrs.evolve(request, seed=request.seed + salt), progress)


class MutatesInputs(GradientBackend):
    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        if request.inputs.video is not None:
            request.inputs.video.frames[0] = 0
        return super().sample(request, progress)


class ReturnsArray(GradientBackend):
    def sample(self, request: GenerationRequest,  # type: ignore[override]
               progress: ProgressCallback | None = None) -> Any:
        return super().sample(request, progress).frames


class NoProgressParameter:
    name = "noprogress"

    def capabilities(self) -> Capabilities:
        return GradientBackend().capabilities()

    def sample(self, request: GenerationRequest) -> Video:
        return GradientBackend().sample(request)


class AcceptsEverything(Capabilities):
    def check(self, request: GenerationRequest, backend_name: str) -> None:
        return None


class LaxCapabilities(GradientBackend):
    def capabilities(self) -> Capabilities:
        caps = super().capabilities()
        return AcceptsEverything(**{f.name: getattr(caps, f.name)
                                    for f in attrs.fields(Capabilities)})


def _with_caps(**changes: Any) -> type[GradientBackend]:
    class BadCaps(GradientBackend):
        def capabilities(self) -> Capabilities:
            return attrs.evolve(super().capabilities(), **changes)

    return BadCaps


def test_wrong_frame_count_fails_the_sample_checks() -> None:
    report = check_backend(WrongFrameCount)
    assert _failed(report) >= SAMPLE_CHECKS
    assert "expected (4, 16, 16)" in report["sample[text_to_video]"].message
    assert report["capabilities"].passed and report["protocol"].passed
    with pytest.raises(ConformanceError, match=r"sample\[text_to_video\]") as info:
        report.raise_for_failures()
    assert isinstance(info.value, AssertionError)


def test_nondeterminism_fails_the_determinism_check() -> None:
    report = check_backend(Nondeterministic)
    assert _failed(report) == {"determinism"}, report.summary()
    assert "different frames" in report["determinism"].message


def test_nondeterministic_backend_may_say_so() -> None:
    honest = _with_caps(deterministic=False)
    report = check_backend(honest, only=["determinism", "cancellation", "no_key_access"])
    assert report.ok and report["determinism"].skipped


def test_ignoring_the_seed_fails_the_determinism_check() -> None:
    report = check_backend(IgnoresSeed, only=["determinism"])
    assert _failed(report) == {"determinism"}
    assert "identical frames" in report["determinism"].message


def test_ignoring_cancellation_fails() -> None:
    report = check_backend(IgnoresCancellation)
    assert _failed(report) == {"cancellation", "pipeline_cancellation"}, report.summary()
    assert "swallowed" in report["cancellation"].message


def test_wrapping_the_cancellation_fails() -> None:
    report = check_backend(WrapsCancellation, only=["cancellation"])
    assert _failed(report) == {"cancellation"}
    assert "wrapped" in report["cancellation"].message


def test_never_reporting_progress_fails() -> None:
    report = check_backend(NoProgress)
    assert {"progress", "cancellation", "pipeline_cancellation"} == _failed(report)
    assert "never called" in report["progress"].message


def test_writing_a_file_fails(tmp_path: Path) -> None:
    report = check_backend(WritesFile, backend_options={"cache_dir": str(tmp_path)})
    assert _failed(report) == {"no_file_writes"}, report.summary()
    assert "clip-0.npy" in report["no_file_writes"].message


def test_writes_the_audit_hook_cannot_see_are_found_in_the_sandbox() -> None:
    report = check_backend(WritesThroughChild, only=["no_file_writes"])
    assert _failed(report) == {"no_file_writes"}
    assert "made-by-child" in report["no_file_writes"].message


def test_reading_keys_fails() -> None:
    report = check_backend(ReadsKeys)
    assert _failed(report) == {"no_key_access"}, report.summary()
    assert "watermark.key" in report["no_key_access"].message


def test_reading_key_variables_fails() -> None:
    report = check_backend(KeyedOutput, only=["no_key_access"])
    assert _failed(report) == {"no_key_access"}
    assert "from the environment: VIDGEN_WATERMARK_KEY" in report["no_key_access"].message


def test_frames_depending_on_key_env_fail() -> None:
    report = check_backend(SneakilyKeyedOutput, only=["no_key_access"])
    assert _failed(report) == {"no_key_access"}
    assert "depend on the VIDGEN_* environment" in report["no_key_access"].message


def test_mutating_inputs_fails() -> None:
    report = check_backend(MutatesInputs, only=["sample"])
    assert _failed(report) == {"sample[edit]", "sample[inpaint]", "sample[stylize]",
                               "sample[extend]"}
    assert "in place" in report["sample[edit]"].message


def test_returning_an_array_fails() -> None:
    report = check_backend(ReturnsArray, only=["sample[text_to_video]"])
    assert "not a vidgen.Video" in report["sample[text_to_video]"].message


def test_protocol_problems_fail() -> None:
    report = check_backend(NoProgressParameter, only=["protocol"])
    assert _failed(report) == {"protocol"}
    assert "sample(request, progress=None)" in report["protocol"].message

    class Nameless(GradientBackend):
        name = ""

    assert _failed(check_backend(Nameless, only=["protocol"])) == {"protocol"}


@pytest.mark.parametrize(("changes", "words"), [
    ({"default_frames": 100}, "outside min_frames..max_frames"),
    ({"tasks": frozenset()}, "non-empty frozenset"),
    ({"tasks": frozenset({"text_to_video"})}, "vidgen.Task values"),
    ({"size_multiple": 3}, "not a multiple of size_multiple 3"),
    ({"default_height": 512}, "over max_height"),
    ({"default_fps": 0.0}, "default_fps"),
    ({"model_id": "unknown"}, "name the model"),
    ({"model_version": ""}, "model_version"),
])
def test_bad_capabilities_fail(changes: dict[str, Any], words: str) -> None:
    report = check_backend(_with_caps(**changes), only=["capabilities"])
    assert _failed(report) == {"capabilities"}
    assert words in report["capabilities"].message


def test_capabilities_that_accept_everything_fail() -> None:
    report = check_backend(LaxCapabilities, only=["capabilities_check"])
    assert _failed(report) == {"capabilities_check"}
    assert "accepted too many frames" in report["capabilities_check"].message


def test_restricted_tasks_refuse_the_others() -> None:
    only_t2v = _with_caps(tasks=frozenset({Task.TEXT_TO_VIDEO}))
    report = check_backend(only_t2v, only=["capabilities_check"])
    assert report.ok and "an unsupported task" in report["capabilities_check"].message


def test_a_backend_that_cannot_be_built_fails_everything() -> None:
    def factory(**options: Any) -> GradientBackend:
        raise errors.BackendError("no weights")

    report = check_backend(factory, only=["protocol", "progress", "registry"])
    assert _failed(report) == {"protocol", "progress"}
    assert "could not be built" in report["progress"].message
    assert "no weights" in report["protocol"].message


def test_registry_mismatches_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # a built-in name cannot be taken over by another backend
    report = check_backend(GradientBackend, name="scene", only=["registry"])
    assert "builds SceneBackend" in report["registry"].message

    class Renamed(GradientBackend):
        name = "other-name"

    monkeypatch.setitem(base._registered, "renamed",
                        ("runtime", "tests:Renamed", Renamed))
    report = check_backend(Renamed, name="renamed", only=["registry"])
    assert "calls itself 'other-name'" in report["registry"].message
    report = check_backend(GradientBackend, name="not-registered", only=["registry"])
    assert "is not registered" in report["registry"].message


def test_a_plugin_shadowing_a_builtin_name_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    fake = importlib.metadata.EntryPoint(name="scene", value="evil_plugin:Scene",
                                         group=base.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**params: Any) -> Any:
        found = real(**params)
        if params.get("group") == base.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([*found, fake])
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    report = check_backend("scene", only=["registry"])
    assert "may not shadow a built-in" in report["registry"].message


# --- options and the pytest form -------------------------------------------------------


def test_options_are_validated() -> None:
    with pytest.raises(errors.ConfigurationError, match="unknown conformance check"):
        check_backend(GradientBackend, skip=["no-such-check"])
    with pytest.raises(errors.ConfigurationError, match="conformance options"):
        check_backend(GradientBackend, frames=4)
    with pytest.raises(errors.ConfigurationError, match="positive int"):
        check_backend(GradientBackend, num_frames=0)
    with pytest.raises(errors.ConfigurationError, match="differs"):
        check_backend("scene", name="gradient")


def test_skip_and_tasks_options() -> None:
    report = check_backend(GradientBackend, tasks=["image_to_video"],
                           skip=["pipeline", "pipeline_cancellation"],
                           only=["sample", "pipeline", "pipeline_cancellation", "progress"])
    assert report.ok, report.summary()
    assert report["sample[image_to_video]"].passed
    assert report["sample[text_to_video]"].skipped
    assert report["pipeline"].status is CheckStatus.SKIPPED
    assert report["progress"].passed  # on the primary task, image_to_video


def test_ready_instances_are_checked_too() -> None:
    backend = GradientBackend()
    report = check_backend(backend, only=["determinism", "sample[text_to_video]"])
    assert report.ok, report.summary()
    assert "second instance" not in report["determinism"].message
    assert backend.calls > 0


class _BrokenConformance(BackendConformance):  # not collected: no Test prefix
    backend_factory = WrongFrameCount


class _SceneConformance(BackendConformance):
    backend_name = "scene"


def test_pytest_form_fails_and_skips() -> None:
    with pytest.raises(ConformanceError, match="expected"):
        _BrokenConformance().test_sample_text_to_video()
    _BrokenConformance().test_capabilities()  # passes
    with pytest.raises(pytest.skip.Exception, match="does not support edit"):
        _SceneConformance().test_sample_edit()
    assert _SceneConformance.conformance_suite().options.name == "scene"


def test_suite_parametrize_helper() -> None:
    suite = ConformanceSuite(GradientBackend)
    assert suite.names() == CHECK_NAMES
    assert suite.assert_check("protocol").passed
    assert suite.run("protocol") is suite.run("protocol")  # cached
    with pytest.raises(errors.ConfigurationError):
        suite.run("nope")
    suite.close()


def test_public_api() -> None:
    assert vidgen.testing.check_backend is check_backend
    assert set(vidgen.testing.__all__) >= {"check_backend", "BackendConformance",
                                           "ConformanceReport", "ConformanceError"}
