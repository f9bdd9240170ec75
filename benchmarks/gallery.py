"""The gallery in docs/gallery/: every task on every backend that offers it, as users get it.

Each clip goes through ``vidgen.Pipeline`` (prompt and likeness checks,
watermark, C2PA signature; throwaway development keys and manifest store in a
temporary directory), then is saved as an animated GIF, and one contact sheet
(PNG) shows, per row, the input (if any) and frames 0, 5, 10, 15 of the output.

    python benchmarks/gallery.py --backends scene,dit --out docs/gallery --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from vidgen.errors import VidgenError
from vidgen.pipeline import Pipeline
from vidgen.types import GenerationResult, Task, Video

SOURCE_CAPTION = "a red circle moving right on a blue background"
CELL, SCALE = 64, 2
SHOWN_FRAMES = (0, 5, 10, 15)


def source_clip() -> Video:
    """The clip the editing tasks start from: rendered by the scene backend."""
    from vidgen.backends.scene.backend import SceneBackend
    from vidgen.types import GenerationRequest

    return SceneBackend().sample(GenerationRequest(prompt=SOURCE_CAPTION, seed=1))


def half_mask(frames: int | None = None, *, right: bool = True) -> np.ndarray:
    """True on one half: the region to regenerate (inpaint) or animate (cinemagraph)."""
    mask = np.zeros((CELL, CELL), dtype=bool)
    mask[:, CELL // 2:] = right
    mask[:, :CELL // 2] = not right
    return mask if frames is None else np.broadcast_to(mask, (frames, CELL, CELL)).copy()


Job = Callable[[Pipeline, Path], GenerationResult]


def jobs(clip: Video) -> dict[Task, tuple[str, np.ndarray | None, Job]]:
    """Per task: the prompt shown, the input shown (frames), and the call."""
    image, frames = clip.frames[0], clip.frames
    return {
        Task.TEXT_TO_VIDEO: ("a yellow star falling on a gray background", None,
                             lambda p, o: p.generate("a yellow star falling on a gray background",
                                                     output=o, seed=3)),
        Task.IMAGE_TO_VIDEO: ("a red circle moving up on a blue background", image,
                              lambda p, o: p.image_to_video(
                                  image, "a red circle moving up on a blue background",
                                  output=o, seed=3)),
        Task.EDIT: ("a green square moving right on a blue background", frames,
                    lambda p, o: p.edit(clip, "a green square moving right on a blue background",
                                        strength=0.6, output=o, seed=3)),
        Task.STYLIZE: ("a red circle moving right on a black background", frames,
                       lambda p, o: p.stylize(clip, "a red circle moving right on a black "
                                              "background", output=o, seed=3)),
        Task.INPAINT: ("a white triangle on a blue background (right half)", frames,
                       lambda p, o: p.inpaint(clip, half_mask(clip.num_frames),
                                              "a white triangle on a blue background",
                                              output=o, seed=3)),
        Task.CINEMAGRAPH: ("a red circle moving up on a blue background (left half moves)",
                           image,
                           lambda p, o: p.cinemagraph(image, half_mask(right=False),
                                                      "a red circle moving up on a blue "
                                                      "background", output=o, seed=3)),
        Task.EXTEND: ("continue: a red circle moving right", frames,
                      lambda p, o: p.extend(clip, SOURCE_CAPTION, num_frames=16, output=o,
                                            seed=3)),
        Task.LOOP: ("a blue triangle moving left (loop)", None,
                    lambda p, o: p.loop("a blue triangle moving left", output=o, seed=3)),
    }


def thumbnail(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(frame).resize((CELL * SCALE, CELL * SCALE), Image.Resampling.NEAREST)


def save_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    images = [thumbnail(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                   duration=int(1000 / fps), optimize=True)


def contact_sheet(rows: list[dict[str, Any]], path: Path) -> None:
    side, label_w, pad = CELL * SCALE, 260, 6
    width = label_w + (1 + len(SHOWN_FRAMES)) * (side + pad)
    sheet = Image.new("RGB", (width, len(rows) * (side + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        y = pad + r * (side + pad)
        draw.text((pad, y + 4), f"{row['backend']} / {row['task']}", fill="black")
        draw.text((pad, y + 20), row["prompt"][:40], fill="gray")
        draw.text((pad, y + 34), row["prompt"][40:80], fill="gray")
        if row.get("error"):
            draw.text((pad, y + 52), "refused: " + row["error"][:36], fill="red")
            continue
        draw.text((pad, y + 52), f"{row['seconds']:.1f} s", fill="gray")
        if row["input"] is not None:
            sheet.paste(thumbnail(row["input"]), (label_w, y))
        for i, index in enumerate(SHOWN_FRAMES):
            frames = row["frames"]
            sheet.paste(thumbnail(frames[min(index, len(frames) - 1)]),
                        (label_w + (i + 1) * (side + pad), y))
    sheet.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="scene,dit")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    clip = source_clip()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            pipe = Pipeline.from_backend(name, keys_dir=Path(tmp) / "keys",
                                         store=Path(tmp) / "store.sqlite3")
            offered = pipe.backend.capabilities().tasks
            for task, (prompt, shown, call) in jobs(clip).items():
                if task not in offered:
                    continue
                row: dict[str, Any] = {"backend": name, "task": task.value, "prompt": prompt,
                                       "input": None if shown is None
                                       else (shown if shown.ndim == 3 else shown[0])}
                start = time.perf_counter()
                try:
                    result = call(pipe, Path(tmp) / f"{name}-{task.value}.mp4")
                except VidgenError as exc:  # a refusal is shown, not hidden
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    rows.append(row)
                    continue
                row["seconds"] = time.perf_counter() - start
                row["frames"] = result.video.frames
                save_gif(result.video.frames, args.out / f"{name}-{task.value}.gif",
                         result.video.fps)
                rows.append(row)
    contact_sheet(rows, args.out / "contact-sheet.png")
    summary = [{k: v for k, v in r.items() if k not in ("frames", "input")} for r in rows]
    (args.out / "gallery.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
