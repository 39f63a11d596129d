"""The language model: embedding -> dropout -> recurrent core (one of CELLS) -> dropout -> decoder."""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import torch
from torch import Tensor, nn

from ..errors import InputError
from .cells import CELLS, make_cell
from .config import ModelConfig


class LanguageModel(nn.Module):
    """Next-token model over a recurrent core.

    Args:
        vocab_size: V.
        cell: "rnn", "gru", "lstm" or "gru-ode".
        **options: the other :class:`~pyjlode.models.config.ModelConfig` fields (embed_size, hidden_size,
            num_layers, dropout, tie_weights: share the embedding matrix with the decoder, Press & Wolf
            2017, needs hidden_size == embed_size) and, for the gru-ode, ``ode=SolverConfig(...)`` or
            the SolverConfig fields themselves (solver, backward_solver, rtol, ...).
    """

    def __init__(self, vocab_size: int, cell: str = ModelConfig.cell, **options):
        super().__init__()
        self._config = cfg = ModelConfig.with_options(vocab_size, cell=cell, **options).validate()
        E, H = cfg.embed_size, cfg.hidden_size
        solver = {"config": cfg.ode} if CELLS[cfg.cell].solver_settings else {}
        self.core = make_cell(cfg.cell, E, H, cfg.num_layers, cfg.dropout, **solver)
        self.embedding = nn.Embedding(vocab_size, E)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(H, vocab_size)
        # uniform ±0.1 embedding/decoder and zero decoder bias, as pytorch/examples word_language_model
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    @classmethod
    def from_config(cls, cfg: ModelConfig | Mapping) -> "LanguageModel":
        """Rebuild from a :class:`ModelConfig` or its ``asdict`` (as stored in a checkpoint)."""
        if not isinstance(cfg, ModelConfig):
            cfg = ModelConfig.from_dict(cfg)
        return cls(**vars(cfg))

    @property
    def config(self) -> ModelConfig:
        """The model's (validated) configuration; a copy."""
        return replace(self._config)

    def init_state(self, batch_size: int):
        return self.core.init_state(batch_size)

    def detach_state(self, state):
        return self.core.detach_state(state)

    def forward(self, tokens: Tensor, state=None) -> tuple[Tensor, object]:
        """tokens (T, B) long -> (logits (T, B, V), state)."""
        if tokens.dim() != 2:
            raise InputError(f"tokens must be (T, B) token ids, got shape {tuple(tokens.shape)}")
        x = self.drop(self.embedding(tokens))                   # (T, B, E)
        out, state = self.core(x, state)                        # (T, B, H)
        return self.decoder(self.drop(out)), state

    def num_parameters(self) -> int:
        """Trainable parameters, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def solver_stats(self) -> dict:
        return self.core.solver_stats()

    @torch.no_grad()
    def generate(self, prompt_ids: Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Continue a prompt by sampling i ~ multinomial(softmax(logits / temperature)).

        Runs in eval mode (no dropout) and restores the previous mode.

        Args:
            prompt_ids: 1-D LongTensor of at least one token.
            max_new_tokens: how many tokens to produce.
            temperature: softmax temperature; 0 picks the most likely token (greedy).
            top_k: sample among the k most likely tokens only (None: all).
            generator: a torch.Generator on the model's device, for reproducible samples.

        Returns:
            1-D LongTensor with the new ids only (the prompt is not repeated).
        """
        if prompt_ids.dim() != 1 or prompt_ids.numel() == 0:
            raise InputError("prompt_ids must be a non-empty 1-D tensor of token ids")
        if temperature < 0:
            raise InputError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be a positive integer or None, got {top_k}")
        was_training = self.training
        self.eval()
        try:
            device = self.decoder.weight.device
            logits, state = self(prompt_ids.to(device).view(-1, 1))
            last, new = logits[-1, 0], []
            for i in range(max_new_tokens):
                nxt = _sample(last, temperature, top_k, generator)
                new.append(nxt)
                if i + 1 < max_new_tokens:
                    logits, state = self(nxt.view(1, 1), state)
                    last = logits[-1, 0]
            return torch.stack(new) if new else prompt_ids.new_empty(0)
        finally:
            self.train(was_training)


def _sample(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    """One id from a (V,) logit vector."""
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature == 0:
        return logits.argmax()
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[0]
