"""Shared fixtures. The embedded model is trained once and cached (see bridges/digits_cnn.py)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite's runs are tiny, so compiling is most of their time (about half the workers'
# time, measured with jax.monitoring's compile events): compile without XLA's costly LLVM
# optimisations (the whole suite ~8% faster here) and with XLA's older CPU fusion code
# generator, which compiles the loop's programs in half the time (the suite 12:10 -> 10:42
# here, measured 2026-12-02). (Compiling each program unsplit,
# --xla_cpu_parallel_codegen_split_count=1, saved another 36 s but moved a perturbation
# chain's values by one ulp against its stages run one by one: not used.) A program's
# meaning is the same; float results may differ in the last bits from the default flags, so
# every comparison a test makes is between runs under the same flags (subprocesses inherit
# them). FADEJAX_TEST_XLA_OPTIMISE=1 runs the suite with XLA's default flags instead.
if os.environ.get("FADEJAX_TEST_XLA_OPTIMISE") != "1":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false").strip()

# Under pytest-xdist each worker gets its share of the cores for torch's (and BLAS's) OpenMP
# threads: two workers of two threads each on two cores leave OpenMP threads spinning for a
# descheduled partner at every parallel region, which slowed small torch calls up to 7x (a
# batch-1 CNN step with the other core busy: 10.6 s for 400 steps, 3.8 s on one thread).
# Set before anything imports torch, and inherited by the runs tests start as subprocesses,
# so a test's in-process and subprocess runs use the same thread count (their float results
# depend on it in the last bits).
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits


@pytest.fixture(scope="session", autouse=True)
def own_trust_store(tmp_path_factory):
    """A trust store of the session's own (fadejax.engine.store.trust): runs the tests make are trusted
    there, never in the real user's config directory; subprocesses inherit it."""
    before = os.environ.get("FADEJAX_CONFIG_DIR")
    os.environ["FADEJAX_CONFIG_DIR"] = str(tmp_path_factory.mktemp("fadejax-config"))
    yield
    if before is None:
        os.environ.pop("FADEJAX_CONFIG_DIR", None)
    else:
        os.environ["FADEJAX_CONFIG_DIR"] = before


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache for the session: the many runs that build the same
    loop (a reference run, a stopped one, its resumption; every CLI test on the same config)
    load its executables instead of compiling them again. XLA compiles deterministically, so
    a loaded executable computes exactly what a fresh compile would. Command-line runs that
    tests start as subprocesses share it (``subprocess_env.jax_subprocess_env``)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = ["jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes"]
    before = {name: getattr(jax.config, name) for name in names}
    cc.reset_cache()
    # Under pytest-xdist each worker has its own base directory; their parent is shared, so
    # every worker loads what any of them compiled.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    (shared / "jax_cache").mkdir(exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(shared / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for name, value in before.items():
        jax.config.update(name, value)
    cc.reset_cache()


@pytest.fixture(scope="session")
def digit_images() -> np.ndarray:
    """Eight real handwritten digits, 32x32 grey, ``(8, 32, 32, 1)`` float32 in [0, 1]."""
    small = load_digits().images[:8] / 16.0
    big = [np.asarray(Image.fromarray((d * 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR)) / 255.0 for d in small]
    return np.stack(big)[..., None].astype(np.float32)


@pytest.fixture(scope="session")
def photo_images() -> np.ndarray:
    """Three real colour photographs shipped with scikit-image, 64x64 RGB, ``(3, 64, 64, 3)``."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee()]
    small = [np.asarray(Image.fromarray(p).resize((64, 64), Image.BILINEAR)) for p in photos]
    return (np.stack(small).astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def default_config():
    from fadejax.engine.config import parse_config

    return parse_config({})


@pytest.fixture(scope="session")
def digits_task(default_config):
    """The embedded default task: held-out digits, the trained CNN through the torch bridge."""
    from fadejax.engine.build import build_task

    return build_task(default_config, progress=False)


@pytest.fixture(scope="session")
def ground_truth(digits_task, tmp_path_factory) -> np.ndarray:
    """Exhaustive failure rate of each of the 125 default actions, ``(125,)``, over the first
    third (180) of the held-out digits: a third of the queries of the whole set (measured on
    recordings/digits.npz: rates correlate 0.994 with the whole set's, the same worst cell
    and the same 13 worst cells). Computed once per session: the first pytest-xdist worker
    to need it saves it where every worker looks (the others wait for it, then load it)."""
    from filelock import FileLock

    from fadejax.engine.config import parse_config
    from fadejax.engine.ground_truth import failure_landscape
    from fadejax.engine.build import build_task

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    saved = shared / "ground_truth_third.npy"
    with FileLock(str(saved) + ".lock"):
        if saved.is_file():
            return np.load(saved)
        third = build_task(parse_config({"data": {"limit": digits_task.num_samples // 3}}), oracle=digits_task.oracle, progress=False)
        rates = failure_landscape(third)
        np.save(saved, rates)
        return rates


# Debian's chromium as the probe starts it (no sandbox as root; no background network calls).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture()
def browser():
    """A headless Debian chromium driven by Playwright (scripts/test.sh installs chromium)."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True, scope="module")
def _torch_threads_unchanged_by_a_module():
    """Restore torch's CPU thread count after each module. The audited CNN's scores differ
    in their last bits between thread counts, so a module that left torch on one thread
    once made the kill -9 test's in-process reference run disagree with its subprocess run."""
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


#: The slowest test files (measured under the suite's two workers, this machine), run
#: first: with two pytest-xdist workers taking a file at a time, a long file started last
#: would leave one worker idle at the end. scripts/test.sh passes --no-loadscope-reorder,
#: without which pytest-xdist orders files by their number of tests instead. Tests within a
#: file keep their order; other files follow as collected. Only the order changes, never
#: what runs.
SLOWEST_FIRST = ["test_cli_matrix.py", "test_fade.py", "test_searcher_contract.py", "test_text_task.py", "test_report.py", "test_run_resume.py", "test_columnar_records.py", "test_one_writer.py",
                 "test_posterior.py", "test_dqn.py", "test_family.py", "test_prompt_task.py", "test_sweep.py", "test_sweep_cluster.py", "test_gym_env.py", "test_rl_envs.py",
                 "test_learning_curves.py", "test_finetune.py", "test_text_finetune.py", "test_new_searchers.py", "test_fused.py",
                 "test_searcher_guide.py", "test_readme_commands.py", "test_conditions.py", "test_corruption_report.py", "test_audit_guide.py", "test_restructure.py",
                 "test_lora.py", "test_multidevice.py", "test_posterior_walk.py", "test_scale.py", "test_start_up.py", "test_ground_truth.py",
                 "test_bootstrapped.py", "test_corruption_space.py", "test_corruptions_weather.py", "test_corruptions_blur.py", "test_perturbations.py", "test_cli_bad_input.py", "test_hf_classifier.py", "test_end_to_end.py",
                 "test_baselines.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))  # stable: file order kept within ranks


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Three classes of 16x16 pictures saved in every PIL mode a user's folder mixes
    (L, RGB, RGBA, P, CMYK; PNG and JPEG)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    modes = [("L", "png"), ("RGB", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "jpg"), ("RGB", "jpg")]
    for c, name in enumerate(["circle", "square", "triangle"]):
        (root / name).mkdir()
        for i, (mode, ext) in enumerate(modes):
            pixels = (rng.random((16, 16, 3)) * 80 + 60 * c).astype(np.uint8)
            Image.fromarray(pixels, "RGB").convert(mode).save(root / name / f"{i}.{ext}")
    return root
