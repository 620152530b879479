"""The seq2seq fine-tuner: Seq2SeqTrainer in its own process through fadejax.stages.finetune.launch,
checkpoints and resume after kill -9, and a bad spec refused before any work (without torch)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bridges.tiny_summarizer import build_word_tokenizer
from fadejax.audits.text.data import builtin_articles
from fadejax.stages.finetune import FineTuneError, launch, validate_spec


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """The fine-tuning processes run tiny models: one thread each keeps them fast on a busy machine."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random T5 with a word tokenizer, lower-cased (edited) articles and clean ones."""
    from transformers import T5Config, T5ForConditionalGeneration

    root = tmp_path_factory.mktemp("seq2seq_ft")
    data = builtin_articles("train", 30)
    tokenizer = build_word_tokenizer(data.articles + data.references + [a.lower() for a in data.articles])
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1, num_heads=4,
                      dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    with open(root / "edited.jsonl", "w") as f:
        for article, summary in zip(data.articles[:20], data.references[:20]):
            f.write(json.dumps({"article": article.lower(), "summary": summary}) + "\n")
    with open(root / "clean.jsonl", "w") as f:
        for article, summary in zip(data.articles[20:], data.references[20:]):
            f.write(json.dumps({"article": article, "summary": summary}) + "\n")
    return root


def _spec(root, out, **hyper):
    return {
        "kind": "seq2seq", "model": str(root / "model"), "train_data": str(root / "edited.jsonl"),
        "clean_data": str(root / "clean.jsonl"), "output_dir": str(out),
        "hyper": {"max_input_tokens": 64, "max_target_tokens": 24, **hyper},
    }


def test_defaults_are_the_papers_and_validation_needs_no_torch(setup, tmp_path):
    spec = validate_spec(_spec(setup, tmp_path / "never"))
    h = spec.hyper
    assert (h.learning_rate, h.weight_decay, h.batch_size, h.epochs) == (2e-5, 1e-2, 2, 3)
    code = (
        "import json, sys; from fadejax.stages.finetune import validate_spec; "
        f"validate_spec(json.loads({json.dumps(json.dumps(_spec(setup, tmp_path / 'never')))})); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


HYPER = {"learning_rate": 3e-3, "epochs": 3, "batch_size": 2}  # 30 pairs (20 edited + 10 clean): 15 steps an epoch
TOTAL = 45


@pytest.fixture(scope="module")
def whole(setup, tmp_path_factory):
    """An uninterrupted fine-tune with the default checkpointing (every epoch)."""
    out = tmp_path_factory.mktemp("whole") / "ft"
    return out, launch(_spec(setup, out, **HYPER), quiet=True)


def test_fine_tune_trains_saves_and_reports(setup, whole):
    out, metrics = whole
    assert metrics["steps"] == TOTAL and metrics["epochs"] == 3 and metrics["resumed_from"] is None
    assert metrics["model"] == str(out / "model")
    assert np.isfinite(metrics["train_loss"]) and metrics["final_loss"] < metrics["train_loss"]
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    before = AutoModelForSeq2SeqLM.from_pretrained(setup / "model").state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(metrics["model"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert len(AutoTokenizer.from_pretrained(metrics["model"])) == len(AutoTokenizer.from_pretrained(setup / "model"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-15", "checkpoint-30", "checkpoint-45"]
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_lora_trains_only_adapters_and_saves_a_merged_model_that_loads_like_the_original(setup, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    metrics = launch(_spec(setup, tmp_path / "lora", epochs=1, learning_rate=1e-2, scope="lora", lora_rank=2), quiet=True)
    before = AutoModelForSeq2SeqLM.from_pretrained(setup / "model").state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(metrics["model"]).state_dict()
    assert sorted(after) == sorted(before) and not any("lora" in k for k in after)  # merged: a plain T5 again
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith((".q.weight", ".v.weight")) for k in changed)  # the attention projections peft adapts, nothing else
    total = sum(v.numel() for v in before.values())
    assert metrics["scope"] == "lora" and 0 < metrics["trained_parameters"] < total / 10
    assert metrics["examples"] == {"failure": 20, "clean": 10}


def _readable(path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


def test_a_killed_fine_tune_resumes_from_its_last_checkpoint(setup, whole, tmp_path):
    _, reference = whole
    # checkpoints every 5 steps here: a kill lands mid-epoch; checkpointing does not change the training
    spec = validate_spec(_spec(setup, tmp_path / "killed", **HYPER, save_steps=5))
    (tmp_path / "killed").mkdir()
    spec_path = tmp_path / "killed" / "spec.json"
    spec_path.write_text(json.dumps(spec.model_dump(mode="json")))
    process = subprocess.Popen([sys.executable, "-m", "bridges.finetune", str(spec_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "killed" / "checkpoints" / "checkpoint-5" / "trainer_state.json"
    deadline = time.time() + 120
    while not _readable(first) and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists() and not (tmp_path / "killed" / "metrics.json").exists()
    resumed = launch(spec, quiet=True)
    assert resumed["resumed_from"].startswith(str(tmp_path / "killed" / "checkpoints" / "checkpoint-"))
    assert 5 <= int(resumed["resumed_from"].rsplit("-", 1)[1]) < TOTAL
    assert resumed["steps"] == reference["steps"] == TOTAL
    # it continued where the killed run stopped: it ends where the uninterrupted run ends
    a, b = load_file(reference["model"] + "/model.safetensors"), load_file(tmp_path / "killed" / "model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert resumed["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-3)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "/nonexistent/model"}, "model '/nonexistent/model' is not a directory"),
        ({"train_data": "/nonexistent/edited.jsonl"}, "train_data '/nonexistent/edited.jsonl' does not exist"),
        ({"hyper": {"learning_rate": -1.0}}, "hyper.learning_rate: Input should be greater than 0"),
        ({"hyper": {"epochs": 0}}, "hyper.epochs"),
        ({"optimiser": "adam"}, "optimiser: Extra inputs are not permitted"),
    ],
)
def test_a_bad_spec_fails_clearly_before_any_work(setup, tmp_path, change, message):
    spec = {**_spec(setup, tmp_path / "never"), **change}
    with pytest.raises(FineTuneError) as info:
        launch(spec, quiet=True)
    assert message in str(info.value)
    assert not (tmp_path / "never").exists()


def test_bad_pairs_files_are_named_with_their_line(setup, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"article": "a", "summary": "b"}\n{"article": "a"}\n')
    with pytest.raises(FineTuneError, match="train_data '.*bad.jsonl' line 2 must be an object with string 'article' and 'summary'"):
        validate_spec({**_spec(setup, tmp_path / "never"), "train_data": str(bad)})
    bad.write_text("not json\n")
    with pytest.raises(FineTuneError, match="clean_data '.*bad.jsonl' line 1 is not JSON"):
        validate_spec({**_spec(setup, tmp_path / "never"), "clean_data": str(bad)})
