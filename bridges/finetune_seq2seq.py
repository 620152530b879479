"""Fine-tune a seq2seq summarizer on edited articles (the paper's stage 3 for summarization).

The Hugging Face ``Seq2SeqTrainer`` with the spec's settings (paper Appendix D.2: lr 2e-5,
weight decay 1e-2, batch 2, 3 epochs; everything else the library's defaults), no
evaluation and no experiment reporting. Checkpoints go to ``output_dir/checkpoints`` every
``save_steps`` steps (or every epoch); a relaunched run resumes from the newest *complete*
checkpoint (one whose ``trainer_state.json``, written last, is readable) so a ``kill -9``
costs at most the steps since it. Writes the model and tokenizer to ``output_dir/model`` and
``output_dir/metrics.json`` ``{"epochs", "steps", "train_loss", "final_loss", "model",
"resumed_from", "scope", "trained_parameters", "examples"}``, where ``train_loss`` is the mean loss over every step of the run (both sides
of a resume: each step's loss is kept in the checkpointed trainer state) and ``final_loss``
the last step's.

With ``hyper.scope == "lora"`` the model trains peft's low-rank adapters only; the saved
model has them merged in, so it loads and audits like the original.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from bridges.weights import local_pretrained

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _read_pairs(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` in ``folder`` whose trainer state was fully written; newer broken ones are removed."""
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), folder / name) for name in os.listdir(folder) if (m := _CHECKPOINT.match(name)) and (folder / name).is_dir()),
        reverse=True,
    )
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
            return path
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)  # killed while being written
    return None


def run(spec) -> dict:
    from transformers import (
        AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments,
        TrainerCallback,
    )

    out = Path(spec.output_dir)
    metrics_path = out / "metrics.json"
    if metrics_path.is_file() and (out / "model").is_dir():
        print(f"fine-tune already finished: {out / 'model'}", flush=True)
        return json.loads(metrics_path.read_text())
    h = spec.hyper
    local = local_pretrained(spec.model)
    tokenizer = AutoTokenizer.from_pretrained(local, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(local, local_files_only=True)
    if h.scope == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=h.lora_rank, lora_alpha=h.lora_alpha,
                                                 lora_dropout=0.0))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    edited, clean = _read_pairs(spec.train_data), (_read_pairs(spec.clean_data) if spec.clean_data else [])
    pairs = edited + clean
    articles = tokenizer([spec.input_prefix + p["article"] for p in pairs], truncation=True, max_length=h.max_input_tokens)
    labels = tokenizer(text_target=[p["summary"] for p in pairs], truncation=True, max_length=h.max_target_tokens)
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": target}
        for ids, mask, target in zip(articles["input_ids"], articles["attention_mask"], labels["input_ids"])
    ]

    class Progress(TrainerCallback):
        """Progress on stdout (the engine shows the child's stdout; tqdm goes to stderr)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            every = max(1, state.max_steps // 20)  # about twenty progress lines a run
            if logs and "loss" in logs and (state.global_step % every == 0 or state.global_step == state.max_steps):
                print(f"fine-tune step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}", flush=True)

        def on_save(self, args, state, control, **kwargs):
            print(f"fine-tune checkpoint at step {state.global_step}/{state.max_steps}", flush=True)

    checkpoints = out / "checkpoints"
    args = Seq2SeqTrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=h.learning_rate,
        weight_decay=h.weight_decay,
        per_device_train_batch_size=h.batch_size,
        num_train_epochs=h.epochs,
        seed=h.seed,
        save_strategy="epoch" if h.save_steps is None else "steps",
        save_steps=h.save_steps or 500,
        logging_strategy="steps",
        logging_steps=1,  # every step's loss is kept in the trainer state, so train_loss survives a resume
        eval_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        predict_with_generate=False,
    )
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        callbacks=[Progress()],
    )
    # The stock progress callback prints every logged step's dict (logging_steps=1 above);
    # Progress prints about twenty lines a run instead.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    resume = last_complete_checkpoint(checkpoints)
    if resume is not None:
        print(f"resuming fine-tune from {resume}", flush=True)
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)

    final = out / "model"
    staging = out / "model.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if h.scope == "lora":
        trainer.model.merge_and_unload().save_pretrained(str(staging))
    else:
        trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    metrics = {
        "epochs": h.epochs,
        "steps": int(trainer.state.global_step),
        "train_loss": sum(losses) / len(losses) if losses else None,
        "final_loss": losses[-1] if losses else None,
        "model": str(final),
        "resumed_from": str(resume) if resume is not None else None,
        "scope": h.scope,
        "examples": {"failure": len(edited), "clean": len(clean)},
        "trained_parameters": int(trained),
    }
    metrics_path.write_text(json.dumps(metrics, indent=2))
    return metrics
