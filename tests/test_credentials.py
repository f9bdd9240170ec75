"""Durable credentials: the watermark in the chain, the soft binding, the store, recovery."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

import vidgen
from vidgen import errors
from vidgen.cli import main
from vidgen.pipeline import Pipeline
from vidgen.provenance import c2pa_inplace
from vidgen.provenance.c2pa import (
    SoftBinding,
    decode_watermark_id,
    encode_watermark_id,
    method_for_alg,
    read_soft_binding,
    soft_binding_alg,
    soft_binding_assertion,
)
from vidgen.provenance.keys import DevKeys, default_watermark_key, init_dev_keys
from vidgen.provenance.store import ManifestStore
from vidgen.provenance.watermark import (
    DEFAULT_METHOD,
    available_methods,
    read_key_file,
    watermarker,
    write_key_file,
)
from vidgen.types import Video

from .conftest import GradientBackend
from .mp4boxes import strip_c2pa
from .watermark_double import TEST_KEY, TEST_METHOD, BlockTestWatermark

# --- the soft-binding assertion ----------------------------------------------------------


def test_soft_binding_assertion_format() -> None:
    a = soft_binding_assertion("vidgen", 0x0BADF00D, duration_ms=2500)
    assert a["label"] == "c2pa.soft-binding"
    data = a["data"]
    assert data["alg"] == "org.vidgen.wm.v1"
    assert data["blocks"] == [{"scope": {"timespan": {"start": 0, "end": 2500}},
                               "value": "C63wDQ=="}]  # base64 of 0b ad f0 0d
    assert data["pad"] == [] and "vidgen" in data["name"]
    assert read_soft_binding({"assertions": [a]}) == SoftBinding("org.vidgen.wm.v1", "vidgen",
                                                                 0x0BADF00D)


def test_alg_names_round_trip() -> None:
    for method in ("vidgen", "dwtDctSvd", TEST_METHOD):
        assert method_for_alg(soft_binding_alg(method)) == method
    assert method_for_alg("com.adobe.trustmark.Q") is None
    assert method_for_alg("org.vidgen.wm.") is None
    for wid in (0, 1, 0xFFFFFFFF, 123456789):
        assert decode_watermark_id(encode_watermark_id(wid)) == wid
    for bad in (None, 5, "not base64!", "AAAA", "AAAAAAA="):
        assert decode_watermark_id(bad) is None


def test_foreign_soft_binding_is_not_read_as_a_vidgen_id() -> None:
    manifest = {"assertions": [{"label": "c2pa.soft-binding", "data": {
        "alg": "com.adobe.trustmark.Q", "blocks": [{"scope": {}, "value": "C63wDQ=="}]}}]}
    assert read_soft_binding(manifest) == SoftBinding("com.adobe.trustmark.Q", None, None)
    assert read_soft_binding({"assertions": []}) is None and read_soft_binding(None) is None


def test_default_alg_matches_the_default_method() -> None:
    if DEFAULT_METHOD not in available_methods():
        pytest.skip("the default watermark method is not installed")
    from vidgen.provenance.watermark import keyed

    assert soft_binding_alg(keyed.METHOD) == keyed.ALGORITHM_ID


@pytest.mark.parametrize("in_place", [True, False])
def test_c2pa_signs_and_validates_the_soft_binding(
        in_place: bool, dev_keys: DevKeys, anchors: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not in_place:
        monkeypatch.setattr(c2pa_inplace, "available", lambda: False)
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "s.db")
    res = pipe.generate("x", num_frames=10, fps=5, output=tmp_path / "o.mp4")
    report = vidgen.verify(res.path, trust=anchors, store=tmp_path / "s.db")
    assert report.c2pa is not None and report.c2pa.state == "trusted" and not report.c2pa.codes
    signed = next(a["data"] for a in report.c2pa.manifest["assertions"]  # type: ignore[index]
                  if a["label"] == "c2pa.soft-binding")
    assert signed["alg"] == soft_binding_alg(TEST_METHOD)
    assert signed["blocks"][0]["scope"] == {"timespan": {"start": 0, "end": 2000}}
    assert decode_watermark_id(signed["blocks"][0]["value"]) == res.watermark_id
    assert report.watermark is not None and report.watermark.detected
    assert report.watermark.payload == res.watermark_id
    assert report.watermark.matches_manifest is True
    assert report.recovered_manifest is None  # nothing to recover: the manifest is there
    assert report.verdict == "confirmed"


# --- the pipeline: always watermarked, recorded, fail closed ---------------------------------


def test_every_output_is_watermarked_and_recorded(dev_keys: DevKeys, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "s.db")
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=store)
    assert pipe.watermarker.name == TEST_METHOD  # $VIDGEN_WATERMARK_METHOD (conftest)
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    det = BlockTestWatermark(TEST_KEY).detect(Video.read(res.path))
    assert det.detected and det.payload == res.watermark_id
    record = store.lookup_record(res.watermark_id or 0)
    assert record is not None
    assert record.manifest == res.manifest and record.sha256 == res.sha256
    assert record.path == str(res.path)


def test_unavailable_method_fails_closed_at_construction(
        dev_keys: DevKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.WatermarkError, match="Every output must carry a watermark") \
            as info:
        Pipeline(GradientBackend(), signer=dev_keys.signer(), watermark_method="no-such")
    assert info.value.stage == "watermark" and "available:" in info.value.message
    monkeypatch.setenv("VIDGEN_WATERMARK_METHOD", "no-such-either")
    with pytest.raises(errors.WatermarkError, match="no-such-either"):
        Pipeline(GradientBackend(), signer=dev_keys.signer())
    assert list(tmp_path.iterdir()) == []


def test_there_is_no_opt_out(dev_keys: DevKeys) -> None:
    import inspect

    params = inspect.signature(Pipeline.__init__).parameters
    assert not [p for p in params if "skip" in p or p in {"watermark", "no_watermark"}]
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), watermarker=None)
    assert pipe.watermarker is not None  # None means "the default", not "none"


def test_watermarker_and_key_are_exclusive(dev_keys: DevKeys) -> None:
    with pytest.raises(errors.ConfigurationError, match="either"):
        Pipeline(GradientBackend(), signer=dev_keys.signer(),
                 watermarker=BlockTestWatermark(TEST_KEY), watermark_key=TEST_KEY)


def test_explicit_key_and_method(dev_keys: DevKeys, tmp_path: Path) -> None:
    other = bytes(range(100, 132))
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), watermark_key=other,
                    watermark_method=TEST_METHOD, store=tmp_path / "s.db")
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    frames = Video.read(res.path)
    assert BlockTestWatermark(other).detect(frames).payload == res.watermark_id
    assert not BlockTestWatermark(TEST_KEY).detect(frames).detected  # keyed


def test_ids_already_in_the_store_are_not_reused(dev_keys: DevKeys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class Store:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def record(self, *args: Any) -> None:
            pass

        def contains(self, watermark_id: int) -> bool:
            self.asked.append(watermark_id)
            return len(self.asked) < 4  # the first three draws are taken

    draws = iter([11, 22, 33, 44, 55])
    import vidgen.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module.secrets, "randbits", lambda bits: next(draws))
    store = Store()
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=store)
    assert pipe._new_watermark_id() == 44 and store.asked == [11, 22, 33, 44]


def test_store_write_failure_leaves_no_file(dev_keys: DevKeys, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 200)
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=corrupt)
    with pytest.raises(errors.StoreError, match="corrupt"):
        pipe.generate("x", output=out_dir / "o.mp4")
    assert list(out_dir.iterdir()) == []


def test_watermarker_that_does_not_mark_is_caught_by_verify(
        dev_keys: DevKeys, tmp_path: Path) -> None:
    """A mark whose id disagrees with the manifest is reported, not hidden."""
    class WrongId(BlockTestWatermark):
        def embed(self, video: Video, payload: int) -> Video:
            return super().embed(video, payload ^ 1)

    store = tmp_path / "s.db"
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=store,
                    watermarker=WrongId(TEST_KEY))
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    r = vidgen.verify(res.path, store=store, watermark_method=TEST_METHOD)
    assert r.watermark is not None and r.watermark.detected
    assert r.watermark.payload == (res.watermark_id or 0) ^ 1
    assert r.watermark.matches_manifest is False
    assert r.watermark.explanation and "declares" in r.watermark.explanation


# --- keys ------------------------------------------------------------------------------------


def test_keys_init_writes_a_private_watermark_key_kept_by_force(tmp_path: Path) -> None:
    keys = init_dev_keys(tmp_path / "k")
    assert stat.S_IMODE(keys.watermark_key.stat().st_mode) == 0o600
    key = read_key_file(keys.watermark_key)
    assert len(key) == 32
    init_dev_keys(tmp_path / "k", overwrite=True)
    assert read_key_file(keys.watermark_key) == key  # rotating it would orphan every mark


def test_default_watermark_key_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_watermark_key() == TEST_KEY  # $VIDGEN_WATERMARK_KEY (conftest)
    made = default_watermark_key(tmp_path / "explicit")  # keys_dir wins, created on first use
    assert (tmp_path / "explicit" / "watermark.key").is_file()
    assert default_watermark_key(tmp_path / "explicit") == made != TEST_KEY
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY")
    key_file = tmp_path / "wm.key"
    write_key_file(key_file, bytes(range(50, 82)))
    monkeypatch.setenv("VIDGEN_WATERMARK_KEY_FILE", str(key_file))
    assert default_watermark_key() == bytes(range(50, 82))
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY_FILE")
    monkeypatch.setenv("VIDGEN_KEYS_DIR", str(tmp_path / "default"))
    first = default_watermark_key()
    assert (tmp_path / "default" / "watermark.key").is_file()
    assert default_watermark_key() == first


def test_dev_keys_dir_gets_a_watermark_key_on_first_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY")
    keys_dir = tmp_path / "fresh"
    pipe = Pipeline(GradientBackend(), keys_dir=keys_dir, store=tmp_path / "s.db")
    assert (keys_dir / "watermark.key").is_file() and (keys_dir / "signer.key").is_file()
    res = pipe.generate("x", output=tmp_path / "o.mp4")
    key = read_key_file(keys_dir / "watermark.key")
    assert BlockTestWatermark(key).detect(Video.read(res.path)).payload == res.watermark_id


# --- recovery: verify and the CLI -----------------------------------------------------------


@pytest.fixture
def stripped(dev_keys: DevKeys, tmp_path: Path) -> tuple[Path, Path, int]:
    store = tmp_path / "s.db"
    res = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=store).generate(
        "x", num_frames=12, output=tmp_path / "o.mp4")
    out = tmp_path / "stripped.mp4"
    strip_c2pa(res.path, out)
    assert res.watermark_id is not None
    return out, store, res.watermark_id


def test_recovery_after_strip_and_reencode(stripped: tuple[Path, Path, int],
                                           tmp_path: Path) -> None:
    path, store, wid = stripped
    reencoded = tmp_path / "re.mp4"
    Video.read(path).write(reencoded, crf=30)
    for f in (path, reencoded):
        r = vidgen.verify(f, store=store)
        assert r.c2pa is not None and r.c2pa.state == "absent"
        assert r.watermark is not None and r.watermark.checked and r.watermark.detected
        assert r.watermark.payload == wid and r.watermark.method == TEST_METHOD
        assert r.watermark.frames_used == 12 and r.watermark.matches_manifest is None
        assert r.recovered_manifest == ManifestStore(store).lookup(wid)
        assert r.verdict == "confirmed" and r.exit_code == 0


def test_verify_samples_at_most_max_frames(stripped: tuple[Path, Path, int]) -> None:
    path, store, wid = stripped
    r = vidgen.verify(path, store=store, max_frames=5)
    assert r.watermark is not None and r.watermark.frames_used == 4  # every 3rd of 12
    assert r.watermark.payload == wid


def test_wrong_key_detects_nothing(stripped: tuple[Path, Path, int]) -> None:
    path, store, _ = stripped
    r = vidgen.verify(path, store=store, key=bytes(range(200, 232)))
    assert r.watermark is not None and r.watermark.checked and not r.watermark.detected
    assert r.watermark.p_value == 1.0 and r.recovered_manifest is None
    assert r.verdict == "unconfirmed"


def test_collisions_are_reported(stripped: tuple[Path, Path, int]) -> None:
    path, store, wid = stripped
    ManifestStore(store).record(wid, {"title": "a later clip"}, "0" * 64, "/elsewhere.mp4")
    r = vidgen.verify(path, store=store)
    assert r.recovered_manifest == {"title": "a later clip"}  # the most recent
    assert r.watermark is not None and r.watermark.explanation
    assert "2 outputs share this id" in r.watermark.explanation


def test_method_named_by_manifest_but_not_installed(dev_keys: DevKeys, tmp_path: Path) -> None:
    class Exotic(BlockTestWatermark):
        name = "exotic"

    res = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "s.db",
                   watermarker=Exotic(TEST_KEY)).generate("x", output=tmp_path / "o.mp4")
    r = vidgen.verify(res.path, store=tmp_path / "s.db")
    assert r.watermark is not None and not r.watermark.checked
    assert r.watermark.explanation and "exotic" in r.watermark.explanation
    assert r.verdict == "unconfirmed"  # valid, untrusted: the C2PA answer stands
    with pytest.raises(errors.ConfigurationError, match="no watermarking method"):
        vidgen.verify(res.path, watermark_method="exotic")


def test_cli_verify_with_key_file_and_store(stripped: tuple[Path, Path, int], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path, store, wid = stripped
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY")
    key_file = tmp_path / "wm.key"
    write_key_file(key_file, TEST_KEY)
    assert main(["verify", str(path), "--json", "--store", str(store)]) == 1  # no key at hand
    report = json.loads(capsys.readouterr().out)
    assert report["watermark"]["checked"] is False and "--key" in report["watermark"][
        "explanation"]
    assert main(["verify", str(path), "--json", "--key", str(key_file), "--store",
                 str(store)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "ignored" not in captured.err
    assert report["verdict"] == "confirmed"
    assert report["watermark"]["detected"] is True and report["watermark"]["payload"] == wid
    assert set(report["watermark"]) >= {"checked", "detected", "payload", "p_value",
                                        "bits_matched", "frames_used", "method",
                                        "matches_manifest"}
    assert report["recovered_manifest"]["assertions"]
    assert main(["verify", str(path), "--key", str(key_file), "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert f"id {wid}" in text and "recovered manifest" in text
    key_file.chmod(0o644)
    assert main(["verify", str(path), "--key", str(key_file)]) == 2
    assert "chmod 600" in capsys.readouterr().err
    monkeypatch.setenv("VIDGEN_WATERMARK_KEY_FILE", str(tmp_path / "missing.key"))
    assert main(["verify", str(path)]) == 2


def test_cli_generate_reports_watermark_and_store(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.db"
    assert main(["generate", "a red circle moving right", "-o", str(tmp_path / "c.mp4"),
                 "--frames", "6", "--store", str(store), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["watermark_method"] == TEST_METHOD and summary["store"] == str(store)
    assert ManifestStore(store).lookup(summary["watermark_id"]) == summary["manifest"]
    assert main(["generate", "a red circle", "-o", str(tmp_path / "d.mp4"),
                 "--watermark-method", "nope"]) == 1
    err = capsys.readouterr().err
    assert "[watermark]" in err and "nope" in err
    assert not (tmp_path / "d.mp4").exists()


def test_keys_init_cli_mentions_the_watermark_key(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "init", str(tmp_path / "k")]) == 0
    assert "watermark.key" in capsys.readouterr().out
    assert stat.S_IMODE((tmp_path / "k" / "watermark.key").stat().st_mode) == 0o600


# --- the real default method, when installed --------------------------------------------------


@pytest.mark.skipif(DEFAULT_METHOD not in available_methods(),
                    reason="the default watermark method is not installed")
def test_default_method_end_to_end(dev_keys: DevKeys, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    pipe = Pipeline.from_backend("scene", signer=dev_keys.signer(),
                                 watermark_method=DEFAULT_METHOD, store=store)
    res = pipe.generate("a red circle moving right", num_frames=16, output=tmp_path / "o.mp4")
    assert read_soft_binding(res.manifest) == SoftBinding(
        "org.vidgen.wm.v1", DEFAULT_METHOD, res.watermark_id)
    stripped = tmp_path / "stripped.mp4"
    strip_c2pa(res.path, stripped)
    r = vidgen.verify(stripped, store=store)  # the method comes from the environment here ...
    assert r.watermark is not None and r.watermark.method == TEST_METHOD
    r = vidgen.verify(stripped, store=store, watermark_method=DEFAULT_METHOD)  # ... or is named
    assert r.watermark is not None and r.watermark.detected
    assert r.watermark.payload == res.watermark_id and r.verdict == "confirmed"
    r = vidgen.verify(res.path, store=store)  # with the manifest, its soft binding names it
    assert r.watermark is not None and r.watermark.method == DEFAULT_METHOD
    assert r.watermark.matches_manifest is True
    assert watermarker(TEST_KEY, DEFAULT_METHOD).name == DEFAULT_METHOD
