"""`semsearch train`: fine-tune a sentence-transformers model with in-batch and mined hard negatives.

Nothing is half-written: the run lives in a hidden work folder next to the output
(`.NAME.partial`) with its checkpoints; only a finished model is renamed to the output. An
interrupted run of the same command (same data, base and settings) resumes from its last
checkpoint; a different one starts over.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from indexer.encoding.backends import cpu_flags
from indexer.training.card import TrainOptions, TrainResult, write_card
from indexer.training.data import Example, TrainData, split_validation
from indexer.training.mining import EncodeFn, accuracy_at_1, group_texts, mine_hard_negatives
from storage import SemsearchError
from storage.records import utc_now

logger = logging.getLogger(__name__)
STATE = "state.json"


class TrainError(SemsearchError):
    code = "train_error"
    status = 400


def train_model(data: TrainData, *, base: str, base_path: str, output: Path, options: TrainOptions,
                device: str = "cpu", overwrite: bool = False, show_progress: bool = True,
                trust_remote_code: bool = False) -> TrainResult:
    """Fine-tune `base` on `data` and save it as a sentence-transformers folder at `output`.

    Args:
        data: the checked training examples (indexer.training.data.read_train_file).
        base: the base model's canonical name (for the card).
        base_path: where sentence-transformers loads it from.
        output: the new model folder; refused if it exists unless `overwrite`.
        options: training settings.
        device: a concrete device, "cpu" or "cuda" (indexer.encoding.devices.resolve_device).
        overwrite: replace an existing output folder (only once training has finished).
        show_progress: a progress bar with ETA on stderr.
        trust_remote_code: run the base model's own code.

    Returns:
        Accuracy@1 on the held-out split before and after, steps, time and how it ended.
    """
    output = Path(output).expanduser().resolve()
    if output.exists() and not overwrite:
        raise TrainError(f"output folder {output} exists; choose another --output or pass --overwrite")
    work = output.parent / f".{output.name}.partial"
    run_key = {"base": base, "data_sha256": data.sha256, "options": asdict(options), "device": device}
    state = _load_state(work, run_key)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(options.seed)
    model = SentenceTransformer(base_path, device=device, trust_remote_code=trust_remote_code)
    model.max_seq_length = min(int(model.max_seq_length or options.max_length), options.max_length)
    train, validation = split_validation(data, options.val_fraction, options.seed)
    if len(train) < 2:
        raise TrainError(f"only {len(train)} training example(s) after the validation split; "
                         "add examples or lower --val-fraction")
    encode = _encoder(model, data.symmetric)
    if state is None:
        encode_base = _encoder(model, data.symmetric, cache={})  # before and mining share texts
        started = time.perf_counter()
        state = {"key": run_key, "step": 0, "best": None, "bad": 0, "history": [],
                 "before": accuracy_at_1(encode_base, train, validation, data.symmetric),
                 "negatives": mine_hard_negatives(encode_base, train, data.symmetric,
                                                  options.hard_negatives),
                 "seconds": time.perf_counter() - started, "created_at": utc_now()}
        work.mkdir(parents=True, exist_ok=True)
        _save_state(work, state)
    resumed = state["step"] > 0
    trainer = _Loop(model, train, [tuple(n) for n in state["negatives"]], data.symmetric,
                    options, device)
    if resumed:
        trainer.restore(work / "checkpoint.pt")
        logger.info("resuming %s at step %d of %d", work, state["step"], trainer.total)
    stopped = trainer.run(state, work, validation, encode, show_progress)
    final = work / "final"
    shutil.rmtree(final, ignore_errors=True)
    if (work / "best").exists():
        os.replace(work / "best", final)
        model = SentenceTransformer(str(final), device=device, trust_remote_code=trust_remote_code)
    else:
        model.save(str(final))
    result = TrainResult(
        output=str(output), base=base, device=device, accuracy_before=state["before"],
        accuracy_after=accuracy_at_1(_encoder(model, data.symmetric), train, validation,
                                     data.symmetric),
        steps=state["step"], seconds=round(state["seconds"], 1), stopped_early=stopped,
        resumed=resumed, history=state["history"])
    write_card(final, data, options, result, len(train), len(validation))
    _publish(final, output, overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return result


class _Loop:
    """The optimisation loop: batches of distinct groups, MNRL loss, evaluation, checkpoints."""

    def __init__(self, model: Any, train: list[Example], negatives: list[tuple[str, ...]],
                 symmetric: bool, options: TrainOptions, device: str) -> None:
        import torch

        self.model, self.train, self.negatives = model, train, negatives
        self.symmetric, self.options, self.device = symmetric, options, device
        self.own = group_texts(train)
        self.epochs = [_batches(train, options.batch_size, options.seed + e)
                       for e in range(options.epochs)]
        self.total = sum(len(b) for b in self.epochs)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
        warm = max(1, int(self.total * options.warmup))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min(
            (s + 1) / warm, max(0.0, (self.total - s) / max(1, self.total - warm))))
        # bf16 autocast where the hardware has bf16 matrix units (AMX on CPUs; any recent GPU).
        fast_bf16 = device == "cuda" or bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})
        self.autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=fast_bf16)

    def restore(self, path: Path) -> None:
        import torch

        saved = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])

    def run(self, state: dict[str, Any], work: Path, validation: list[Example], encode: EncodeFn,
            show_progress: bool) -> bool:
        """Train from state["step"] on; True if early stopping ended it."""
        from tqdm import tqdm

        flat = [(e, batch) for e, batches in enumerate(self.epochs) for batch in batches]
        bar = tqdm(total=self.total, initial=state["step"], desc="training", unit="step",
                   disable=not show_progress)
        started = time.perf_counter() - state["seconds"]
        try:
            for step in range(state["step"], self.total):
                epoch, batch = flat[step]
                loss = self._step(batch, random.Random(f"{self.options.seed}-{step}"))
                bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch + 1)
                bar.update(1)
                state["step"] = step + 1
                state["seconds"] = time.perf_counter() - started
                end_of_epoch = step + 1 == self.total or flat[step + 1][0] != epoch
                every = self.options.eval_every
                if validation and (end_of_epoch if every <= 0 else (step + 1) % every == 0
                                   or step + 1 == self.total):
                    if self._evaluate(state, work, validation, encode, epoch, loss):
                        self._checkpoint(state, work)
                        return True
                if end_of_epoch or (step + 1) % self.options.checkpoint_every == 0:
                    self._checkpoint(state, work)
        finally:
            bar.close()
        return False

    def _step(self, batch: list[int], rng: random.Random) -> float:
        import torch

        examples = [self.train[i] for i in batch]
        anchors = [e.anchor for e in examples]
        positives = [rng.choice(e.positives) for e in examples]
        limit = self.options.hard_negatives  # per example: given negatives first, then mined
        negatives = [n for i in batch for n in (*self.train[i].negatives, *self.negatives[i])[:limit]]
        candidates = positives + negatives
        self.model.train()
        with self.autocast:
            a = self._embed(anchors, query=True)
            c = self._embed(candidates, query=self.symmetric)
            scores = (a @ c.T).float() * self.options.scale
        # A candidate of the anchor's own group is no negative (in-batch or mined): mask it.
        mask = torch.tensor([[j != i and text in self.own[e.group] for j, text in enumerate(candidates)]
                             for i, e in enumerate(examples)], device=scores.device)
        scores = scores.masked_fill(mask, float("-inf"))
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(examples),
                                                                      device=scores.device))
        self.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def _embed(self, texts: list[str], *, query: bool) -> Any:
        import torch

        prompt = _prompt(self.model, query)
        tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize  # 6.x renamed it
        features = tokenize([prompt + t for t in texts])
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                    for k, v in features.items()}
        return torch.nn.functional.normalize(self.model(features)["sentence_embedding"], dim=-1)

    def _evaluate(self, state: dict[str, Any], work: Path, validation: list[Example],
                  encode: EncodeFn, epoch: int, loss: float) -> bool:
        """Measure, keep the best model in work/best; True when patience has run out."""
        score = accuracy_at_1(encode, self.train, validation, self.symmetric)
        state["history"].append({"step": state["step"], "epoch": epoch + 1, "loss": round(loss, 5),
                                 "accuracy_at_1": score})
        logger.info("step %d: held-out accuracy@1 %.4f", state["step"], score)
        if state["best"] is None or score > state["best"]:
            state["best"], state["bad"] = score, 0
            tmp = work / "best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save(str(tmp))
            shutil.rmtree(work / "best", ignore_errors=True)
            os.replace(tmp, work / "best")
            return False
        state["bad"] += 1
        return bool(state["bad"] >= self.options.patience)

    def _checkpoint(self, state: dict[str, Any], work: Path) -> None:
        import torch

        tmp = work / "checkpoint.pt.tmp"
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, tmp)
        os.replace(tmp, work / "checkpoint.pt")
        _save_state(work, state)  # after the weights: a state never points past its checkpoint


def _batches(train: Sequence[Example], size: int, seed: int) -> list[list[int]]:
    """Shuffled batches in which no group appears twice (its texts would be false negatives)."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    pending = order
    while pending:
        batch: list[int] = []
        groups: set[str] = set()
        later: list[int] = []
        for i in pending:
            if len(batch) < size and train[i].group not in groups:
                batch.append(i)
                groups.add(train[i].group)
            else:
                later.append(i)
        batches.append(batch)
        pending = later
    return [b for b in batches if len(b) > 1]  # one example has no in-batch negative


def _prompt(model: Any, query: bool) -> str:
    prompts = model.prompts or {}
    names = ("query",) if query else ("document", "passage")
    return next((prompts[n] for n in names if prompts.get(n)), "")


def _encoder(model: Any, symmetric: bool, cache: dict[str, np.ndarray] | None = None) -> EncodeFn:
    """Encode with the model as it is now; `cache` only while its weights do not change."""
    def encode(texts: Sequence[str], query: bool) -> np.ndarray:
        model.eval()
        prompt = _prompt(model, query or symmetric)
        prompted = [prompt + t for t in texts]
        known = cache if cache is not None else {}
        todo = list(dict.fromkeys(t for t in prompted if t not in known))
        if todo:
            vectors = model.encode(todo, batch_size=64, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
            known.update(zip(todo, np.asarray(vectors, dtype=np.float32), strict=True))
        if not prompted:
            return np.zeros((0, 0), np.float32)
        return np.stack([known[t] for t in prompted]).astype(np.float32)

    return encode


def _load_state(work: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The interrupted run's state if it is this same run; otherwise its folder is cleared."""
    try:
        state: dict[str, Any] = json.loads((work / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    if state.get("key") == json.loads(json.dumps(key)) and (
            state.get("step", 0) == 0 or (work / "checkpoint.pt").exists()):
        return state
    if work.exists():
        logger.info("discarding %s: an interrupted run with other data or settings", work)
        shutil.rmtree(work)
    return None


def _save_state(work: Path, state: dict[str, Any]) -> None:
    tmp = work / f"{STATE}.tmp"
    tmp.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, work / STATE)


def _publish(final: Path, output: Path, overwrite: bool) -> None:
    """Rename the finished model to `output`; an old output is replaced only now."""
    if output.exists():
        if not overwrite:
            raise TrainError(f"output folder {output} appeared during training; the model is "
                             f"kept in {final}")
        old = output.parent / f".{output.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(output, old)
        os.replace(final, output)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(final, output)
