"""Does each task of a latent backend do what it says? One measured figure per task.

    python benchmarks/tasks.py [--backend dit] [--weights FILE] [--n 6] [--steps 20]
        [--threads 1] [--seed 0] [--tasks all|edits,storyboard] [--out FILE]

``--tasks`` picks the sections: ``edits`` (every task below but storyboard, which
run together per caption) and ``storyboard``; default ``all``.

Sources are rendered by the scene renderer from held-out single-object captions
(``vidgen.training.evaluate.eval_captions``), 16 frames of 64x64 at 8 fps, and
every output is measured from its pixels only (``vidgen.training.measure``):

- image_to_video: frame 0 against the given image (max abs error; the backend
  pastes it, so 0; and PSNR of what it decodes to before the paste, the
  autoencoder's reconstruction of the image) and PSNR of frame 1 against the
  image and against the rendered clip's frame 1.
- inpaint: the mask is where the source's object goes (all frames, dilated by
  3 px); the prompt gives the object a new colour. Outside-mask max abs error
  (must be 0), mean abs change inside, and whether the measured object has the
  new colour.
- cinemagraph: the still is the source's frame 0, the same mask says where
  motion may happen. Static-region max change over all frames (must be 0),
  mean abs frame-to-frame change inside the mask (also the source clip's, for
  scale), and for translating captions whether the measured direction is the
  caption's.
- edit: the new prompt changes the object's colour. Per strength: the rate at
  which the measured colour is the new one, and the mean distance (frame
  sizes) between the edited and the source object's centroids over the frames
  where both are found (structure kept), and PSNR against the source.
  Text-to-video of the same prompt and seed is the reference for "structure
  not kept".
- stylize: the new prompt puts the scene on another background colour
  (appearance only). Background colour rate, object colour kept, trajectory error.
- extend: a source clip continued by 3x its length (64 frames in all, 4x the
  16 the model was trained on), on captions whose object stays in frame;
  colour (ΔE76) and size (|log area ratio|) of the tracked object in each
  16-frame window against the first window.
- loop: seam ratio = mean abs difference last -> first frame over the mean
  consecutive-frame difference (1 = the wrap is an ordinary step), for the
  loop and for plain text-to-video of the same prompt and seed; and the
  largest step of the cyclic clip over its mean step (did the jump move
  inside the clip?).
- storyboard: n storyboards of 2 and 3 prompts (alternately), 16 frames each,
  from held-out captions moving left/right/up/down: the same object turns a
  quarter at each cut (e.g. "... moving right" -> "... moving up" -> "... moving
  left"). Per segment, whether the measured direction is its prompt's; at each
  cut, the tracked object's colour change (ΔE76 of the median colour) and size
  change (|log area ratio|) between the 8 frames before and the 8 after, and
  the centroid's jump (frame sizes) from the last tracked frame before to the
  first after. The
  reference is a hard cut: each segment's prompt sampled on its own by
  text-to-video (same seeds), concatenated.

Prints JSON (with the machine it ran on); ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from vidgen.backends.base import load_backend
from vidgen.backends.scene.grammar import DEFAULT_BACKGROUND, SceneSpec, parse_caption
from vidgen.backends.scene.render import render_scene
from vidgen.training.data import OBJECT_COLORS
from vidgen.training.evaluate import caption_seed, eval_captions, expected_direction
from vidgen.training.measure import (
    ObjectMeasurement,
    background_colors,
    contrast,
    delta_e,
    measure_clip,
    name_color,
)
from vidgen.types import GenerationRequest, Inputs, Task, Video

T, H, W, FPS = 16, 64, 64, 8.0
EDIT_STRENGTHS = (0.3, 0.45, 0.6, 0.8, 1.0)
EXTEND_FRAMES = 3 * T


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main_object(frames: np.ndarray, fps: float = FPS) -> ObjectMeasurement | None:
    found = measure_clip(frames, fps).objects(1)
    return found[0] if found else None


def trajectory_error(a: ObjectMeasurement | None, b: ObjectMeasurement | None) -> float | None:
    """Mean centroid distance (frame sizes) over the frames where both tracks are found."""
    if a is None or b is None:
        return None
    common, ia, ib = np.intersect1d(a.track_frames, b.track_frames, return_indices=True)
    if len(common) == 0:
        return None
    return float(np.mean(np.hypot((a.screen_x[ia] - b.screen_x[ib]) / W,
                                  (a.screen_y[ia] - b.screen_y[ib]) / H)))


def object_mask(frames: np.ndarray, grow: int = 3) -> np.ndarray:
    """(H, W): where any frame differs from its background, grown by ``grow`` pixels."""
    fg = (contrast(frames, background_colors(frames)) >= 40.0).any(axis=0)
    k = 2 * grow + 1
    grown = F.max_pool2d(torch.from_numpy(fg).float()[None, None], k, stride=1, padding=grow)
    return np.asarray(grown[0, 0].numpy() > 0)


def other_color(color: str, avoid: Sequence[str], shift: int) -> str:
    """A palette colour other than ``color`` and ``avoid``, picked deterministically."""
    choices = [c for c in OBJECT_COLORS if c != color and c not in avoid]
    return choices[(OBJECT_COLORS.index(color) + shift) % len(choices)]


def mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def rate(values: Sequence[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


class Runner:
    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.seconds: dict[str, float] = {}

    def __call__(self, key: str, prompt: str, task: Task, seed: int, **kw: Any) -> np.ndarray:
        start = time.perf_counter()
        video: Video = self.backend.sample(GenerationRequest(prompt=prompt, task=task, seed=seed,
                                                             fps=FPS, **kw))
        self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start
        return video.frames


def bench(backend: Any, captions: Sequence[str], extend_captions: Sequence[str],
          seed: int) -> dict[str, Any]:
    run = Runner(backend)
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "image_to_video", "inpaint", "cinemagraph", "edit", "stylize", "extend", "loop")}
    sizes = {"num_frames": T, "height": H, "width": W}
    for i, caption in enumerate(captions):
        s = caption_seed(seed, i)
        spec = parse_caption(caption)
        obj = spec.objects[0]
        source = render_scene(spec, num_frames=T, height=H, width=W, fps=FPS, seed=s).frames
        src_obj = main_object(source)
        clip = Video(source, fps=FPS)
        image = source[0]
        moving = expected_direction(obj.motion) != "static"

        out = run("image_to_video", caption, Task.IMAGE_TO_VIDEO, s, **sizes,
                  inputs=Inputs(image=image))
        # frame 0 is pasted; before that it is the autoencoder's decoding of the image's own
        # latent frame, which the sampler keeps exactly (the causal decoder sees nothing else)
        decoded0 = backend._decode(backend._encode(image[None]), 1)[0]
        rows["image_to_video"].append({
            "caption": caption,
            "frame0_max_abs_error": int(np.abs(out[0].astype(int) - image).max()),
            "frame0_psnr_before_paste": round(psnr(decoded0, image), 2),
            "frame1_psnr_vs_image": round(psnr(out[1], image), 2),
            "frame1_psnr_vs_source": round(psnr(out[1], source[1]), 2)})

        mask = object_mask(source)
        new_color = other_color(obj.color, [spec.background], shift=3)
        recolored = SceneSpec((attrs.evolve(obj, color=new_color),), background=spec.background,
                              camera=spec.camera).caption()
        out = run("inpaint", recolored, Task.INPAINT, s, inputs=Inputs(video=clip, mask=mask))
        m = main_object(out)
        rows["inpaint"].append({
            "caption": caption, "prompt": recolored, "mask_fraction": round(float(mask.mean()), 3),
            "outside_max_abs_error": int(np.abs(out.astype(int) - source)[:, ~mask].max()),
            "inside_mean_abs_change": round(float(
                np.abs(out.astype(int) - source)[:, mask].mean()), 2),
            "new_color": m is not None and m.color == new_color})

        out = run("cinemagraph", caption, Task.CINEMAGRAPH, s, **sizes,
                  inputs=Inputs(image=image, mask=mask))
        m = main_object(out)
        steps = np.abs(np.diff(out.astype(int), axis=0))
        rows["cinemagraph"].append({
            "caption": caption, "moving": moving,
            "static_max_change": int(np.abs(out.astype(int) - image)[:, ~mask].max()),
            "mask_motion_energy": round(float(steps[:, mask].mean()), 3),
            "source_mask_motion_energy": round(float(
                np.abs(np.diff(source.astype(int), axis=0))[:, mask].mean()), 3),
            "direction_ok": (m is not None and m.direction == expected_direction(obj.motion))
            if moving else None})

        t2v = run("text_to_video", recolored, Task.TEXT_TO_VIDEO, s, **sizes)
        m = main_object(t2v)
        edit_row: dict[str, Any] = {"caption": caption, "prompt": recolored, "text_to_video": {
            "color_ok": m is not None and m.color == new_color,
            "trajectory_error": trajectory_error(m, src_obj),
            "psnr_vs_source": round(psnr(t2v, source), 2)}}
        for strength in EDIT_STRENGTHS:
            out = run(f"edit_{strength}", recolored, Task.EDIT, s, strength=strength,
                      inputs=Inputs(video=clip))
            m = main_object(out)
            edit_row[str(strength)] = {"color_ok": m is not None and m.color == new_color,
                                       "trajectory_error": trajectory_error(m, src_obj),
                                       "psnr_vs_source": round(psnr(out, source), 2)}
        rows["edit"].append(edit_row)

        background = other_color(obj.color, [DEFAULT_BACKGROUND, spec.background], shift=5)
        styled = SceneSpec(spec.objects, background=background, camera=spec.camera).caption()
        out = run("stylize", styled, Task.STYLIZE, s, inputs=Inputs(video=clip))
        m = main_object(out)
        measured_bg = name_color(np.median(background_colors(out), axis=0))
        rows["stylize"].append({
            "caption": caption, "prompt": styled, "background_ok": measured_bg == background,
            "object_color_kept": m is not None and m.color == obj.color,
            "trajectory_error": trajectory_error(m, src_obj)})

        t2v = run("loop_text_to_video", caption, Task.TEXT_TO_VIDEO, s, **sizes)
        looped = run("loop", caption, Task.LOOP, s, **sizes)
        rows["loop"].append({"caption": caption, "loop": seam(looped),
                             "text_to_video": seam(t2v)})

    for i, caption in enumerate(extend_captions):
        s = caption_seed(seed, 1000 + i)
        source = render_scene(caption, num_frames=T, height=H, width=W, fps=FPS, seed=s).frames
        out = run("extend", caption, Task.EXTEND, s, num_frames=EXTEND_FRAMES, height=H,
                  width=W, inputs=Inputs(video=Video(source, fps=FPS)))
        rows["extend"].append({"caption": caption,
                               **window_drift(np.concatenate([source, out]))})
    return {"rows": rows, "seconds": {k: round(v, 1) for k, v in run.seconds.items()}}


def seam(frames: np.ndarray) -> dict[str, float]:
    f = frames.astype(np.float64)
    steps = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    wrap = float(np.abs(f[-1] - f[0]).mean())
    mean_step = float(steps.mean())
    cyclic = np.append(steps, wrap)
    return {"wrap": round(wrap, 3), "mean_step": round(mean_step, 3),
            "seam_ratio": round(wrap / max(mean_step, 1e-9), 3),
            "max_step_ratio": round(float(cyclic.max()) / max(float(cyclic.mean()), 1e-9), 3)}


def window_drift(frames: np.ndarray) -> dict[str, Any]:
    """Colour and size of the main object in each T-frame window, against the first window."""
    found, colors, areas = [], [], []
    for k in range(len(frames) // T):
        clip = measure_clip(frames[k * T:(k + 1) * T], FPS)
        tracks = [tr for tr in clip.tracks if len(tr.blobs) >= T // 4]
        found.append(bool(tracks))
        if tracks:
            blobs = tracks[0].blobs
            colors.append(np.median(np.array([b.color for b in blobs]), axis=0))
            areas.append(float(np.median([b.area for b in blobs])))
        else:
            colors.append(None)
            areas.append(None)
    c0, a0 = colors[0], areas[0]
    de = [None if c is None or c0 is None else round(delta_e(c, c0), 2) for c in colors]
    size = [None if a is None or a0 is None else round(abs(math.log(a / a0)), 3) for a in areas]
    return {"found": found, "color_delta_e": de, "size_log_ratio": size}


def summarise(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    i2v, inp, cin = rows["image_to_video"], rows["inpaint"], rows["cinemagraph"]
    edit, sty, ext, lop = rows["edit"], rows["stylize"], rows["extend"], rows["loop"]
    moving = [r for r in cin if r["moving"]]
    summary: dict[str, Any] = {
        "image_to_video": {
            "frame0_max_abs_error": max(r["frame0_max_abs_error"] for r in i2v),
            "frame0_psnr_before_paste": mean([r["frame0_psnr_before_paste"] for r in i2v]),
            "frame1_psnr_vs_image": mean([r["frame1_psnr_vs_image"] for r in i2v]),
            "frame1_psnr_vs_source": mean([r["frame1_psnr_vs_source"] for r in i2v])},
        "inpaint": {
            "outside_max_abs_error": max(r["outside_max_abs_error"] for r in inp),
            "inside_mean_abs_change": mean([r["inside_mean_abs_change"] for r in inp]),
            "new_color_rate": rate([r["new_color"] for r in inp])},
        "cinemagraph": {
            "static_max_change": max(r["static_max_change"] for r in cin),
            "mask_motion_energy": mean([r["mask_motion_energy"] for r in cin]),
            "source_mask_motion_energy": mean([r["source_mask_motion_energy"] for r in cin]),
            "mask_motion_energy_translating": mean([r["mask_motion_energy"] for r in moving]),
            "mask_motion_energy_in_place": mean([r["mask_motion_energy"] for r in cin
                                                 if not r["moving"]]),  # static or rotating
            "direction_rate_translating": rate([r["direction_ok"] for r in moving])},
        "edit": {key: {"color_rate": rate([r[key]["color_ok"] for r in edit]),
                       "trajectory_error": mean([r[key]["trajectory_error"] for r in edit]),
                       "psnr_vs_source": mean([r[key]["psnr_vs_source"] for r in edit]),
                       "tracked": rate([r[key]["trajectory_error"] is not None for r in edit])}
                 for key in ["text_to_video", *map(str, EDIT_STRENGTHS)]},
        "stylize": {
            "background_rate": rate([r["background_ok"] for r in sty]),
            "object_color_kept_rate": rate([r["object_color_kept"] for r in sty]),
            "trajectory_error": mean([r["trajectory_error"] for r in sty]),
            "tracked": rate([r["trajectory_error"] is not None for r in sty])},
        "extend": {
            "windows": len(ext[0]["found"]) if ext else 0,
            "found_rate_per_window": [rate([r["found"][k] for r in ext])
                                      for k in range(len(ext[0]["found"]))] if ext else [],
            "color_delta_e_per_window": [mean([r["color_delta_e"][k] for r in ext])
                                         for k in range(len(ext[0]["found"]))] if ext else [],
            "size_log_ratio_per_window": [mean([r["size_log_ratio"][k] for r in ext])
                                          for k in range(len(ext[0]["found"]))] if ext else []},
        "loop": {kind: {"seam_ratio": mean([r[kind]["seam_ratio"] for r in lop]),
                        "max_step_ratio": mean([r[kind]["max_step_ratio"] for r in lop]),
                        "wrap": mean([r[kind]["wrap"] for r in lop]),
                        "mean_step": mean([r[kind]["mean_step"] for r in lop])}
                 for kind in ("loop", "text_to_video")},
    }
    return summary


STORY_TURNS = {"right": ("up", "left"), "left": ("down", "right"), "up": ("left", "down"),
               "down": ("right", "up")}


def storyboards(captions: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """``n`` storyboards of 2 and 3 prompts (alternately): one object, turning at each cut."""
    moving = [c for c in captions if parse_caption(c).objects[0].motion in STORY_TURNS]
    picks = np.unique(np.round(np.linspace(0, len(moving) - 1, min(n, len(moving)))))
    out = []
    for j, k in enumerate(picks):
        spec = parse_caption(moving[int(k)])
        obj = spec.objects[0]
        motions = (obj.motion, *STORY_TURNS[obj.motion])[:2 + j % 2]
        out.append(tuple(SceneSpec((attrs.evolve(obj, motion=m),), background=spec.background,
                                   camera=spec.camera).caption() for m in motions))
    return out


def main_blob(frames: np.ndarray) -> tuple[np.ndarray, float, Any, Any] | None:
    """Median colour and area of the longest track in ``frames``, and its first and last
    blobs, if one is found."""
    tracks = [tr for tr in measure_clip(frames, FPS).tracks if len(tr.blobs) >= 2]
    if not tracks:
        return None
    blobs = max(tracks, key=lambda tr: len(tr.blobs)).blobs
    return (np.median(np.array([b.color for b in blobs]), axis=0),
            float(np.median([b.area for b in blobs])), blobs[0], blobs[-1])


def story_row(frames: np.ndarray, prompts: Sequence[str]) -> dict[str, Any]:
    directions, de, size, jump = [], [], [], []
    for k, prompt in enumerate(prompts):
        m = main_object(frames[k * T:(k + 1) * T])
        want = expected_direction(parse_caption(prompt).objects[0].motion)
        directions.append(m is not None and m.direction == want)
        if k:
            before, after = main_blob(frames[k * T - T // 2:k * T]), main_blob(
                frames[k * T:k * T + T // 2])
            if before is None or after is None:
                de.append(None)
                size.append(None)
                jump.append(None)
            else:
                de.append(round(delta_e(before[0], after[0]), 2))
                size.append(round(abs(math.log(after[1] / before[1])), 3))
                last, first = before[3], after[2]
                jump.append(round(float(np.hypot((first.x - last.x) / W, (first.y - last.y) / H)),
                                  3))
    return {"direction_ok": directions, "cut_delta_e": de, "cut_size_log_ratio": size,
            "cut_position_jump": jump}


def bench_storyboard(backend: Any, boards: Sequence[tuple[str, ...]], seed: int
                     ) -> dict[str, Any]:
    run = Runner(backend)
    rows = []
    for i, prompts in enumerate(boards):
        s = caption_seed(seed, 2000 + i)
        story = run("storyboard", prompts[0], Task.STORYBOARD, s, num_frames=T, height=H,
                    width=W, storyboard=prompts)
        cuts = np.concatenate([run("storyboard_hard_cut", p, Task.TEXT_TO_VIDEO,
                                   s + 1000 * k if k else s, num_frames=T, height=H, width=W)
                               for k, p in enumerate(prompts)])
        rows.append({"prompts": list(prompts), "storyboard": story_row(story, prompts),
                     "hard_cut": story_row(cuts, prompts)})
    return {"rows": rows, "seconds": {k: round(v, 1) for k, v in run.seconds.items()}}


def summarise_storyboard(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def part(kind: str) -> dict[str, Any]:
        seg = [ok for r in rows for ok in r[kind]["direction_ok"]]
        first = [r[kind]["direction_ok"][0] for r in rows]
        later = [ok for r in rows for ok in r[kind]["direction_ok"][1:]]
        de = [v for r in rows for v in r[kind]["cut_delta_e"]]
        size = [v for r in rows for v in r[kind]["cut_size_log_ratio"]]
        jump = [v for r in rows for v in r[kind]["cut_position_jump"]]
        return {"direction_rate": rate(seg), "direction_rate_first_segment": rate(first),
                "direction_rate_later_segments": rate(later),
                "cut_delta_e": mean(de), "cut_size_log_ratio": mean(size),
                "cut_position_jump": mean(jump),
                "cuts_tracked": rate([v is not None for v in de])}
    return {"storyboards": len(rows), "segments": sum(len(r["prompts"]) for r in rows),
            "cuts": sum(len(r["prompts"]) - 1 for r in rows),
            "storyboard": part("storyboard"), "hard_cut": part("hard_cut")}


def stays_in_frame(caption: str, frames: int) -> bool:
    """Does the rendered object stay visible over ``frames`` (the extend benchmark's length)?"""
    render = render_scene(caption, num_frames=frames, height=H, width=W, fps=FPS, seed=0)
    return bool(all(np.all(track.visible[-T:]) for track in render.tracks))


def main(argv: Sequence[str] | None = None,
         load: Callable[..., Any] = load_backend) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="dit")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--n", type=int, default=6, help="captions (clips) per task")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="all",
                        help="comma-separated sections: edits, storyboard (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sections = {"edits", "storyboard"} if args.tasks == "all" else set(args.tasks.split(","))
    if not sections or sections - {"edits", "storyboard"}:
        parser.error(f"--tasks takes all or edits,storyboard, got {args.tasks!r}")
    torch.set_num_threads(args.threads)
    options: dict[str, Any] = {"steps": args.steps, "guidance": args.guidance,
                               "threads": args.threads}
    if args.weights is not None:
        options["weights"] = args.weights
    backend = load(args.backend, **options)
    start = time.monotonic()
    summary: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    rows: dict[str, Any] = {}
    if "edits" in sections:
        captions = eval_captions("heldout", "single", n=args.n)
        still = tuple(c for c in eval_captions("heldout", "single")
                      if stays_in_frame(c, T + EXTEND_FRAMES))
        picks = np.unique(np.round(np.linspace(0, len(still) - 1, min(args.n, len(still)))))
        extend_captions = [still[int(k)] for k in picks]
        measured = bench(backend, captions, extend_captions, args.seed)
        summary.update(summarise(measured["rows"]))
        seconds.update(measured["seconds"])
        rows.update(measured["rows"])
    if "storyboard" in sections:
        boards = storyboards(eval_captions("heldout", "single"), args.n)
        story = bench_storyboard(backend, boards, args.seed)
        summary["storyboard"] = summarise_storyboard(story["rows"])
        seconds.update(story["seconds"])
        rows["storyboard"] = story["rows"]
    caps = backend.capabilities()
    result = {
        "benchmark": "tasks",
        "command": "python benchmarks/tasks.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "backend": args.backend, "model_id": caps.model_id, "model_version": caps.model_version,
        "weights": str(args.weights) if args.weights else "shipped",
        "sampling": {"steps": args.steps, "guidance": args.guidance,
                     "sampler": getattr(backend, "sampler", None)},
        "clip": {"frames": T, "height": H, "width": W, "fps": FPS},
        "n": args.n, "seed": args.seed, "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "seconds": round(time.monotonic() - start, 1),
        "summary": summary,
        "seconds_per_task": seconds,
        "rows": rows,
    }
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
