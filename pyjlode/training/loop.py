"""The training loop: truncated BPTT over a batchified token stream, evaluation, checkpoints, exact resume.

The loop is one importable function, :func:`train`, driven by two dataclasses (the model's
:class:`~pyjlode.models.config.ModelConfig` and :class:`~pyjlode.training.config.TrainConfig`); the
command line only builds them. Everything rank-dependent goes through :mod:`pyjlode.training.distributed`
(a no-op for one process): only the main rank logs and writes files, the stream is sharded by columns,
and the recurrent state is gathered before it is saved.

Exact resume: a checkpoint (:mod:`pyjlode.training.state`) holds the parameters, optimizer and scheduler
state, every RNG state, the position in the stream and the recurrent state carried across batches, so N
steps in one go and N/2 + N/2 with ``resume=True`` end with identical parameters on CPU (when evaluations
are scheduled by steps, not seconds).
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import PyjlodeError
from ..evaluation.evaluate import evaluate_nll
from ..experiments.spectrum import last_call_stiffness, watch_last_call
from ..models import LanguageModel
from ..models.config import ModelConfig
from ..ode.errors import SolverError
from . import distributed as dist
from .checkpoint_io import snapshot_checkpoint
from .config import TrainConfig, apply_threads, validate_run
from .resume import load_for_resume, resume_configs
from .rundir import RunDir
from .runlog import RunLog, start_log
from .state import (Progress, checkpoint_payload, load_vocab, model_from_checkpoint, rng_state,
                    save_checkpoint, seed_everything, set_rng_state, to_device)


_clock = time.perf_counter   # the training clock (tests substitute a deterministic one)


class TrainingStopped(PyjlodeError, RuntimeError):
    """Training could not go on (non-finite loss, solver failure); the message is one line."""


# --------------------------------------------------------------------------------------------------
# data


@dataclass
class Corpus:
    tokenizer: Any
    vocab: Any
    train: torch.Tensor      # (T, B) this rank's columns of the batchified training stream
    valid: torch.Tensor      # (T, b) the validation tokens used during training, batchified


def prepare_corpus(tcfg: TrainConfig, info: dist.DistInfo, tokenizer=None, vocab=None) -> Corpus:
    """Load the corpus, build (or reuse) tokenizer and vocabulary on train, batchify train and valid."""
    from ..data import Tokenizer, Vocab, batchify, load_splits

    splits = load_splits(tcfg.corpus, cache_dir=tcfg.cache_dir)
    tokenizer = tokenizer or Tokenizer(level=tcfg.level, lowercase=tcfg.lowercase)
    train_tokens = tokenizer.tokenize(splits["train"])
    vocab = vocab or Vocab.build(train_tokens, min_freq=tcfg.min_freq, max_size=tcfg.max_vocab or None)
    valid_ids = vocab.encode(tokenizer.tokenize(splits["valid"]))
    valid_ids = valid_ids[:tcfg.eval_tokens] if tcfg.eval_tokens else valid_ids
    train = batchify(vocab.encode(train_tokens), tcfg.batch_size, split="train")
    # A small validation split gets fewer columns rather than an error: it only monitors training.
    valid = batchify(valid_ids, max(1, min(tcfg.eval_batch_size, len(valid_ids) // 2)), split="valid")
    dist.check_divisible(tcfg.batch_size, info.world_size)
    return Corpus(tokenizer, vocab, dist.shard_columns(train, info), valid)


# --------------------------------------------------------------------------------------------------
# the loop


class Trainer:
    """Holds model, optimizer, scheduler, data and progress; one method per thing the loop does."""

    def __init__(self, model, mcfg, tcfg: TrainConfig, corpus: Corpus, info: dist.DistInfo,
                 echo: Callable[[str], None]):
        self.model, self.mcfg, self.tcfg, self.corpus, self.info = model, mcfg, tcfg, corpus, info
        dist.replicate(model, info)
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[tcfg.optimizer]
        self.opt = cls(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="min", factor=tcfg.lr_factor, patience=tcfg.lr_patience)
        self.progress = Progress()
        self.carry = None                 # recurrent state carried between windows (detached)
        self.run_dir = RunDir(tcfg.out)
        self.writes = info.is_main and not tcfg.dry_run
        self.echo = echo if info.is_main else (lambda line: None)
        self.rng_at_step = None           # RNG when the running step began (for Ctrl-C mid-step)
        self.log: RunLog | None = None
        self.step_times: deque[float] = deque(maxlen=10)   # seconds of the latest steps of this session
        self._t0 = self._time_before = 0.0   # session clock start, training time before it (set by run)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One (t, B) window: forward, loss and backward on this rank's columns, then, when every rank's
        worked, average the gradients, clip and update. Returns the loss."""
        self.model.train()
        state = None if self.carry is None else self._reset_some(self.model.detach_state(self.carry))
        self.opt.zero_grad(set_to_none=True)
        failure = None
        try:
            logits, state = self.model(x, state)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
            if torch.isfinite(loss):
                loss.backward()
            else:
                failure = f"non-finite loss ({loss.item()})"
        except SolverError as exc:  # in the forward solve or the adjoint's, inside backward()
            failure = _solver_failure(exc, self.mcfg)
        # Forward and backward talk to no other rank, so one that failed cannot strand the others in a
        # collective: all agree here, then all stop with the failing rank's message or all update.
        failed = dist.agree_on_failure(failure, self.info)
        if failed:
            raise TrainingStopped(f"training stopped at step {self.progress.step + 1}{failed.origin()}: "
                                  f"{failed.message}")
        dist.average_gradients(self.model.parameters(), self.info)
        max_norm = self.tcfg.clip if self.tcfg.clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if not torch.isfinite(norm):
            raise TrainingStopped(f"training stopped at step {self.progress.step + 1}: non-finite gradient norm")
        self.opt.step()
        self.carry = state  # only now: an interrupted step leaves the previous state in place
        return loss.item()

    def _reset_some(self, state):
        """Zero the carried state of a random subset of columns (probability ``state_reset`` each).

        Without this a GRU-ODE language model can learn saturating attractors that a cold start on
        unseen text falls into and never leaves (validation perplexity then explodes while training
        perplexity keeps falling). The mask is drawn for the global batch from (seed, step) and sharded
        like the data, so several ranks reset exactly the columns one process would.
        """
        p = self.tcfg.state_reset
        if p <= 0:
            return state
        g = torch.Generator().manual_seed(self.tcfg.seed * 1_000_003 + self.progress.step)
        keep = torch.rand(1, self.tcfg.batch_size, generator=g) >= p
        keep = dist.shard_columns(keep, self.info).reshape(-1)

        def apply(s):
            if isinstance(s, torch.Tensor):  # (layers, B, H): batch on dim -2
                return s * keep.to(s.device, s.dtype).view(-1, 1)
            return type(s)(apply(t) for t in s)
        return apply(state)

    def evaluate(self, scheduled: bool) -> float:
        """Validation NLL on the training-time subset, logged and checkpointed. Only scheduled evaluations
        drive the learning-rate schedule, so a run stopped early and resumed follows the same schedule."""
        p = self.progress
        self.log.flush(self._base())
        valid = self.corpus.valid[:self.tcfg.bptt + 1] if self.tcfg.dry_run else self.corpus.valid
        with watch_last_call(self.model) as seen:
            nll, _ = evaluate_nll(self.model, valid, self.tcfg.bptt, self.info)
        # the GRU-ODE's stiffness at a few of the states the validation pass ended in
        gru_ode = self.info.is_main and self.mcfg.cell == "gru-ode"
        stiffness = last_call_stiffness(self.model, seen) if gru_ode else {}
        self._tick()             # the record, the checkpoint and the final summary include the evaluation
        p.last_eval_step = p.step
        if scheduled:
            self.sched.step(nll)
        improved = nll < p.best_valid
        if improved:
            p.best_valid, p.best_step = nll, p.step
        self.log.evaluation(self._base(), nll, p.best_valid, stiffness)
        self.save(best=improved)
        return nll

    def _base(self) -> dict:
        p = self.progress
        return {"step": p.step, "epoch": p.epoch, "tokens": p.tokens, "wall": round(p.train_time, 3),
                "lr": self.opt.param_groups[0]["lr"]}

    def save(self, best: bool = False) -> None:
        """Write the last (and best) checkpoint on the main rank; every rank calls it (gathering the state is
        collective)."""
        if self.tcfg.dry_run:
            return
        carry = to_device(dist.gather_state(self.carry, self.info), "cpu")
        if not self.info.is_main:
            return
        payload = checkpoint_payload(
            model_config=self.mcfg, train_config=self.tcfg, tokenizer=self.corpus.tokenizer,
            vocab=self.corpus.vocab, model=self.model, optimizer=self.opt, scheduler=self.sched,
            progress=self.progress, carry=carry)
        save_checkpoint(payload, self.run_dir.last)
        if best:
            snapshot_checkpoint(self.run_dir.last, self.run_dir.best)

    def restore(self, ckpt: dict) -> None:
        """Load optimizer, scheduler, progress, carried state and RNG from a checkpoint."""
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.progress = Progress(**ckpt["progress"])
        self.carry = dist.shard_state(to_device(ckpt["carry"], self.info.device), self.info)
        set_rng_state(ckpt["rng"])

    def run(self) -> str:
        """Train until epochs, max_steps, the token budget or the time budget run out; returns which one."""
        from ..data import get_batch

        tc, p, data = self.tcfg, self.progress, self.corpus.train
        rows = data.size(0) - 1
        total = min(math.ceil(rows / tc.bptt) * tc.epochs, tc.max_steps or math.inf)
        self.log = RunLog(self.run_dir.metrics if self.writes else None,
                          self.echo if self.info.is_main else None, total, p.step,
                          bits_per_char=self.corpus.tokenizer.level == "char")
        from ..backends import warmup

        warmup(self.model)      # Julia compiles here, not inside the first timed step
        self._t0, self._time_before = _clock(), p.train_time
        last_eval = p.train_time
        try:
            while p.epoch < tc.epochs:
                while p.pos < rows:
                    stop = dist.broadcast_object(self._stop_reason(), self.info)   # rank 0's clock decides
                    if stop:
                        return stop
                    x, y = get_batch(data, p.pos, tc.bptt)
                    self.rng_at_step = rng_state()
                    t_step = _clock()
                    loss = self.step(x.to(self.info.device), y.to(self.info.device))
                    self.rng_at_step = None
                    n_tokens = x.numel() * self.info.world_size
                    p.step, p.pos, p.tokens = p.step + 1, p.pos + x.size(0), p.tokens + n_tokens
                    self._tick()
                    self.step_times.append(_clock() - t_step)
                    p.step_seconds = sum(self.step_times) / len(self.step_times)
                    self.log.step(loss, n_tokens, self.step_times[-1], self.model.solver_stats() or {})
                    if p.step % tc.log_interval == 0:
                        self.log.flush(self._base())
                    if tc.dry_run:
                        self.evaluate(scheduled=False)
                        return "dry_run"
                    if ((tc.eval_interval and p.step % tc.eval_interval == 0) or p.pos >= rows or
                            self._sync(tc.eval_seconds and p.train_time - last_eval >= tc.eval_seconds)):
                        self.evaluate(scheduled=True)
                        last_eval = p.train_time
                p.epoch, p.pos, self.carry = p.epoch + 1, 0, None
            return "epochs"
        finally:
            self.log.close()

    def _stop_reason(self) -> str | None:
        """Which budget is used up before the next step, if any. The time budget counts the next step as
        long as the latest ones (their mean, kept over resumes), so a run does not overshoot it by a step."""
        tc, p = self.tcfg, self.progress
        if tc.max_steps and p.step >= tc.max_steps:
            return "max_steps"
        if tc.token_budget and p.tokens >= tc.token_budget:
            return "token_budget"
        if tc.time_budget and p.train_time + p.step_seconds > tc.time_budget:
            return "time_budget"
        return None

    def _tick(self) -> None:
        """Bring the training time (this session's clock on top of the time before a resume) up to now."""
        self.progress.train_time = self._time_before + _clock() - self._t0

    def _sync(self, flag) -> bool:
        # Wall-clock decisions differ between ranks; rank 0 decides for all so collectives stay matched.
        return bool(dist.broadcast_object(bool(flag), self.info))


# --------------------------------------------------------------------------------------------------
# entry point


def print_line(line: str) -> None:
    """Print one line above the progress bar, not through it (the default ``echo`` of :func:`train`)."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stdout)


def train(mcfg: ModelConfig, tcfg: TrainConfig, *, resume: bool = False, explicit=None,
          echo: Callable[[str], None] | None = None) -> dict:
    """Train a language model; write checkpoints and metrics.jsonl into the run folder ``tcfg.out``.

    Args:
        mcfg: the model's config (``vocab_size`` is set from the vocabulary).
        tcfg: the training config; ``out=None`` means ``runs/<cell>``.
        resume: continue from the run folder's last checkpoint; model and training settings come from it
            except the stopping/evaluation/device fields in ``RESUME_OVERRIDES`` that ``explicit`` names.
        explicit: option names the user set explicitly (the command line's); None (a call from Python)
            means every ``RESUME_OVERRIDES`` field of ``tcfg`` applies to a resumed run.
        echo: where per-evaluation lines go (default: :func:`print_line`).

    Returns:
        A summary dict: stopped ("epochs", "max_steps", "token_budget", "time_budget", "interrupted",
        "dry_run"), step,
        tokens, train_time, valid_ppl (last evaluation), best_valid_ppl, out.

    Raises:
        InputError (DataError, CheckpointError): bad input, one line. TrainingStopped: non-finite loss or a
        solver failure; the last good checkpoint on disk is left as it was.
    """
    echo = echo or print_line
    tcfg = replace(tcfg, out=tcfg.out or os.path.join("runs", mcfg.cell))
    ckpt = load_for_resume(RunDir(tcfg.out)) if resume else None
    if ckpt is not None:
        mcfg, tcfg = resume_configs(ckpt, mcfg, tcfg, explicit, echo)
    mcfg, tcfg = validate_run(mcfg, tcfg)
    apply_threads(tcfg.threads)
    info = dist.setup(tcfg.device)
    previous = _sigterm_as_interrupt()
    try:
        return _train(mcfg, tcfg, ckpt, info, echo)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if info.enabled:
            dist.cleanup()


def _sigterm_as_interrupt():
    """Treat SIGTERM (schedulers, torchrun shutting down) like Ctrl-C: save, then stop. Returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _train(mcfg: ModelConfig, tcfg: TrainConfig, ckpt: dict | None, info: dist.DistInfo, echo) -> dict:
    if ckpt is None:
        seed_everything(tcfg.seed)
        corpus = prepare_corpus(tcfg, info)
        mcfg = replace(mcfg, vocab_size=len(corpus.vocab))
        model = LanguageModel.from_config(mcfg).to(info.device)
    else:
        tok, vocab = load_vocab(ckpt)
        corpus = prepare_corpus(tcfg, info, tok, vocab)
        model = model_from_checkpoint(ckpt, info.device)
    trainer = Trainer(model, mcfg, tcfg, corpus, info, echo)
    if ckpt is not None:
        trainer.restore(ckpt)
    elif info.is_main and not tcfg.dry_run:
        start_log(trainer.run_dir)
    threads = torch.get_num_threads()
    trainer.echo(f"{mcfg.cell}: {model.num_parameters():,} parameters, vocabulary {len(corpus.vocab):,}, "
                 f"{corpus.train.numel() * info.world_size:,} training tokens, device {info.device}, "
                 f"{threads} CPU thread{'s' * (threads > 1)}"
                 + (f", resuming at step {trainer.progress.step}" if ckpt is not None else ""))
    stopped = _run_guarded(trainer)
    return _summary(trainer, stopped)


def _run_guarded(trainer: Trainer) -> str:
    """Run the loop, turning Ctrl-C into a clean save and failures into one-line TrainingStopped."""
    last = trainer.run_dir.last
    try:
        stopped = trainer.run()
    except KeyboardInterrupt:
        # An interrupted step never reached its update: put the RNG back to where that step began, so the
        # saved state is the last completed step's and --resume replays the interrupted window exactly.
        if trainer.rng_at_step is not None:
            set_rng_state(trainer.rng_at_step)
        trainer.echo(f"interrupted at step {trainer.progress.step}: evaluating and saving {last} "
                     "(Ctrl-C again to skip the evaluation)")
        try:
            if trainer.progress.last_eval_step != trainer.progress.step:
                trainer.evaluate(scheduled=False)
                return "interrupted"
        except KeyboardInterrupt:
            pass
        trainer.save()
        return "interrupted"
    except TrainingStopped as exc:
        raise TrainingStopped(f"{exc}; {_kept(last)}") from None
    except SolverError as exc:
        raise TrainingStopped(f"training stopped at step {trainer.progress.step + 1}: "
                              f"{_solver_failure(exc, trainer.mcfg)}; {_kept(last)}") from None
    if stopped != "dry_run" and trainer.progress.last_eval_step != trainer.progress.step:
        trainer.evaluate(scheduled=False)
    return stopped


def _solver_failure(exc: SolverError, mcfg: ModelConfig) -> str:
    """What a solver failure during training says: which solver failed, where, and what to try."""
    from ..ode.errors import FiniteTimeBlowUp, NonFiniteState
    from ..ode.methods import get_method

    if isinstance(exc, (NonFiniteState, FiniteTimeBlowUp)) and exc.hint:   # no solver setting cures these
        return f"solver {exc.solver} failed ({exc.what} at t={exc.t:.4g}); {exc.hint}"
    backward = mcfg.ode.backward_solver
    stiff = backward is not None and get_method(backward).stiff
    advice = ("try another stiff solver, e.g. `backward_solver` Rodas5P" if stiff else
              "try `backward_solver` KenCarp4 (a stiff solver for the adjoint's backward pass)")
    return f"solver {exc.solver} failed ({exc.what} at t={exc.t:.4g}); {advice}, or loosen `rtol`/`atol`"


def _kept(last: Path) -> str:
    return f"last good checkpoint kept: {last}" if last.exists() else "no checkpoint was written yet"


def _summary(trainer: Trainer, stopped: str) -> dict:
    p = trainer.progress
    summary = {"stopped": stopped, "step": p.step, "tokens": p.tokens, "train_time": p.train_time,
               "best_valid_ppl": math.exp(min(p.best_valid, 50.0)), "best_step": p.best_step,
               "out": str(trainer.run_dir)}
    tail = trainer.log.last_train if trainer.log else {}
    summary.update({k: tail[k] for k in ("nfe_fwd", "nfe_bwd", "tokens_per_s") if k in tail})
    if stopped != "dry_run":
        session = p.train_time - trainer._time_before
        resumed = f" ({session:.0f} s in this session)" if trainer._time_before else ""
        trainer.echo(f"done ({stopped}): {p.step} steps, {p.tokens:,} tokens in {p.train_time:.0f} s of "
                     f"training{resumed}; best valid ppl {summary['best_valid_ppl']:.2f} at step {p.best_step}; "
                     f"checkpoints in {trainer.run_dir}")
        if not trainer.step_times and stopped in _BUDGETS:
            trainer.echo(f"nothing to train: the run's `{stopped}` ({getattr(trainer.tcfg, stopped)}"
                         f"{_BUDGETS[stopped]}) is "
                         f"used up; give a larger `{stopped}` to go on")
    return summary


_BUDGETS = {"max_steps": " steps", "token_budget": " tokens", "time_budget": " s"}   # unit of each
