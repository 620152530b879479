"""How long each pre-flight refusal takes, from the command line, against the 10 s target.

    .venv/bin/python benchmarks/preflight.py [--per-class 200] [--rounds 3]

Builds a folder of mixed images (3 classes, ``--per-class`` each, 64x64 in L, RGB, RGBA,
P and CMYK, PNG and JPEG) and one small torch model for each mistake, then runs
``fadejax discover`` on each mistake as a user would (a new process each time, the
folder read from disk) and times it to its exit. Each mistake must be refused with exit 2,
one ``error:`` line and no run directory. Beside them, in the same round, the same
command's start alone (``fadejax --version``) and a run that passes the pre-flight and
stops after 1 iteration, so the refusals read against the fixed costs they include.
Prints each case's median wall seconds and its share of the 10 s target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
FADEJAX = str(ROOT / ".venv" / "bin" / "fadejax")
TARGET_S = 10.0

MODELS = '''
import torch
from torch import nn


class RGB(nn.Module):
    def __init__(self, num_classes=3, image_size=32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(128, num_classes)
        self.image_size = image_size

    def forward(self, x):
        if x.shape[-1] != self.image_size:
            raise RuntimeError(f"expected {self.image_size}x{self.image_size} images, got {tuple(x.shape[-2:])}")
        return self.head(self.features(x))


class Grey(RGB):
    def __init__(self, num_classes=3, image_size=32):
        super().__init__(num_classes, image_size)
        self.features[0] = nn.Conv2d(1, 8, 3)


class Normalised(RGB):
    normalize_mean = (0.5, 0.5, 0.5)
    normalize_std = (0.25, 0.25, 0.25)


class Named(RGB):
    label_names = ("circle", "square", "star")
'''


def make_folder(root: Path, per_class: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    modes = [("L", "png"), ("RGB", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "jpg"), ("RGB", "jpg")]
    for c, name in enumerate(["circle", "square", "triangle"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            mode, ext = modes[i % len(modes)]
            pixels = (rng.random((64, 64, 3)) * 80 + 60 * c).astype(np.uint8)
            Image.fromarray(pixels, "RGB").convert(mode).save(root / name / f"{i}.{ext}")
    return root


def save(model, path: Path) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def cases(work: Path, folder: Path) -> dict[str, tuple[dict, list[str], str]]:
    """name -> (model section, overrides, what the error line must say)."""
    import torch

    sys.path.insert(0, str(work))
    import bench_models as m

    torch.manual_seed(0)
    weights = {name: save(getattr(m, name)(), work / f"{name}.safetensors") for name in ("RGB", "Grey", "Normalised", "Named")}
    weights["Two"] = save(m.RGB(num_classes=2), work / "Two.safetensors")

    def model(cls, w=None, **more):
        return {"source": "file", "architecture": f"bench_models:{cls}", "weights": weights[w or cls], **more}

    on_purpose = {"refuse_chance": False}
    return {
        "channels": (model("Grey", **on_purpose), [], "set data.channels: 1"),
        "image size": (model("RGB", **on_purpose), ["data.image_size=40"], "set data.image_size"),
        "classes": (model("RGB", "Two", architecture_kwargs={"num_classes": 2}, **on_purpose), [], "model.num_classes"),
        "labels": (model("Named", **on_purpose), [], "are not classes of the model"),
        "normalisation": (model("Normalised", **on_purpose), [], "set model.normalize_mean"),
        "chance": (model("RGB"), [], "model.refuse_chance: false"),
        "passes (1 iteration)": (model("RGB", **on_purpose), ["run.iterations=1"], ""),
    }


def run(work: Path, folder: Path, name: str, section: dict, overrides: list[str], says: str, tag: str) -> float:
    config = work / f"{tag}.yaml"
    config.write_text(yaml.safe_dump({
        "name": "preflight-bench", "data": {"source": "folder", "path": str(folder), "image_size": 32}, "model": section,
        "space": {"axes": [{"name": "darkness", "values": [0.0, 0.5]}, {"name": "blur", "values": [0.0, 1.0]}]},
        "run": {"iterations": 2, "num_envs": 64, "tensorboard": False}}))
    out = work / f"{tag}-run"
    argv = [FADEJAX, "discover", "--config", str(config), "--out", str(out), "--quiet", *[a for o in overrides for a in ("--set", o)]]
    env = {"PYTHONPATH": str(work), "PATH": "/usr/bin:/bin"}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    if says:
        ok = done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and says in lines[0] and not out.exists()
        if not ok:
            raise SystemExit(f"{name}: not refused as it should be (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    elif done.returncode != 0:
        raise SystemExit(f"{name}: failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench_models.py").write_text(MODELS)
        folder = make_folder(work / "folder", args.per_class)
        todo = cases(work, folder)
        times: dict[str, list[float]] = {name: [] for name in ["start (--version)", *todo]}
        for r in range(args.rounds):
            started = time.perf_counter()
            subprocess.run([FADEJAX, "--version"], capture_output=True, check=True)
            times["start (--version)"].append(time.perf_counter() - started)
            for i, (name, (section, overrides, says)) in enumerate(todo.items()):
                times[name].append(run(work, folder, name, section, overrides, says, f"r{r}c{i}"))
        print(f"{3 * args.per_class} images in a mixed folder; median of {args.rounds} rounds, wall seconds to exit")
        print(f"{'case':<24}{'seconds':>9}{'share of 10 s':>15}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:<24}{median:>9.2f}{median / TARGET_S:>15.2f}")
        refusals = [statistics.median(v) for k, v in times.items() if k not in ("start (--version)", "passes (1 iteration)")]
        print(f"slowest refusal: {max(refusals):.2f} s ({max(refusals) / TARGET_S:.2f} of the target)")


if __name__ == "__main__":
    main()
