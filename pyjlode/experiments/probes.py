"""Probes of a trained model: solver work per (solver, backward solver) pair, and perplexity under
Gaussian noise on the input embeddings (after Yan et al. 2020, "On Robustness of Neural ODEs", who add
N(0, σ²) to images; here the perturbation is on the embeddings, σ relative to their RMS)."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..ode.errors import SolverError


def with_solvers(model, solver: str, backward_solver: str | None):
    """A copy of a GRU-ODE LanguageModel with other forward/backward solvers and the same weights."""
    from ..models import LanguageModel

    cfg = model.config
    cfg = replace(cfg, ode=replace(cfg.ode, solver=solver, backward_solver=backward_solver))
    clone = LanguageModel.from_config(cfg).to(model.embedding.weight.device)
    clone.load_state_dict(model.state_dict())
    return clone


def solver_pair_work(model, data: torch.Tensor, pairs: Sequence[tuple[str, str | None]], *,
                     bptt: int = 35, batches: int = 2) -> list[dict]:
    """Forward + backward over a few windows with each (solver, backward_solver) pair.

    Args:
        model: a gru-ode LanguageModel (its weights are used; it is not modified).
        data: (T, B) batchified held-out tokens.
        pairs: e.g. [("Tsit5", "Tsit5"), ("Tsit5", "KenCarp4"), ("Tsit5", "Rodas5P")].
        bptt: window length; batches: windows run per pair (state carried, no parameter update).

    Returns:
        One row per pair: pair, status, loss, NFE / accepted / rejected steps per token forward and
        backward, Jacobians per token, seconds per token; a failed pair has status "failed" and error.
    """
    from ..data import get_batch

    rows = []
    for solver, back in pairs:
        row = {"pair": f"{solver}/{back or solver}", "solver": solver, "backward_solver": back or solver}
        try:
            m = with_solvers(model, solver, back).eval()        # eval: no dropout; gradients still flow
            device = m.embedding.weight.device
            totals: dict[str, float] = {}
            state, n, loss_sum, t0 = None, 0, 0.0, time.perf_counter()
            for k in range(batches):
                i = k * bptt
                if i >= data.size(0) - 1:
                    break
                x, y = (t.to(device) for t in get_batch(data, i, bptt))
                logits, state = m(x, state)
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
                loss.backward()
                state = m.detach_state(state)
                for key, val in m.solver_stats().items():     # per token of this window
                    totals[key] = totals.get(key, 0.0) + val
                loss_sum, n = loss_sum + loss.item(), n + 1
            row.update({k: v / max(n, 1) for k, v in totals.items()})
            row.update(status="ok", loss=loss_sum / max(n, 1), windows=n,
                       seconds_per_token=(time.perf_counter() - t0) / max(n * bptt * data.size(1), 1))
        except (SolverError, ValueError, RuntimeError) as exc:
            row.update(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        rows.append(row)
    return rows


def embedding_rms(model) -> float:
    """Root mean square of the embedding table: the scale σ is relative to."""
    w = model.embedding.weight.detach()
    return float(w.pow(2).mean().sqrt())


class EmbeddingNoise:
    """Context manager adding N(0, (σ·rms)²) to the output of ``model.embedding`` (a forward hook).

    The noise comes from its own seeded generator, so every model sees the same draws for a given
    (seed, shape) and the clean pass (σ = 0) is untouched.
    """

    def __init__(self, model, sigma: float, seed: int = 0):
        self.model, self.scale = model, float(sigma) * embedding_rms(model)
        self.gen = torch.Generator(device=model.embedding.weight.device).manual_seed(seed)
        self.handle = None

    def _hook(self, module, inputs, output):
        if self.scale == 0.0:
            return output
        noise = torch.randn(output.shape, generator=self.gen, device=output.device, dtype=output.dtype)
        return output + self.scale * noise

    def __enter__(self):
        self.handle = self.model.embedding.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False


def robustness(models: Mapping[str, tuple], sigmas: Sequence[float], *, bptt: int = 35,
               seed: int = 0) -> list[dict]:
    """Perplexity of each model on its held-out stream under embedding noise of each relative σ.

    Args:
        models: label -> (model, data (T, B) batchified held-out ids in that model's vocabulary).
        sigmas: relative noise levels, e.g. [0, 0.25, 0.5, 1, 2].
        bptt: evaluation window (state carried).
        seed: noise seed (the same for every model and σ).

    Returns:
        Rows: label, sigma, ppl, ppl_rel (ppl / clean ppl), status (a failed solve: "failed" and error).
    """
    from ..evaluation.evaluate import evaluate_nll

    rows = []
    for label, (model, data) in models.items():
        clean = None
        for sigma in sigmas:
            row = {"label": label, "sigma": float(sigma)}
            try:
                with EmbeddingNoise(model, sigma, seed):
                    nll, _ = evaluate_nll(model, data, bptt)
                ppl = float(torch.tensor(min(nll, 50.0)).exp())
                clean = ppl if clean is None and sigma == 0 else clean
                row.update(status="ok", ppl=ppl, ppl_rel=ppl / clean if clean else None)
            except (SolverError, RuntimeError) as exc:
                row.update(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            rows.append(row)
    return rows
