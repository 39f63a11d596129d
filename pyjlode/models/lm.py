"""The language model: embedding -> dropout -> recurrent core (one of CELLS) -> dropout -> decoder."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..errors import InputError
from .cells import make_cell


@dataclass
class ModelConfig:
    """Everything needed to rebuild a :class:`LanguageModel` (plain data: ``asdict`` goes in checkpoints)."""

    vocab_size: int                      # number of token ids (embedding rows, decoder outputs)
    cell: str = "gru-ode"                # a name in CELLS: rnn, gru, lstm, gru-ode
    embed_size: int = 128                # token embedding width E
    hidden_size: int = 256               # recurrent state width H
    num_layers: int = 1                  # stacked recurrent layers
    dropout: float = 0.0                 # on embeddings, between layers, and before the decoder
    tie_weights: bool = False            # decoder shares the embedding matrix (needs H == E)
    cell_options: dict = field(default_factory=dict)   # gru-ode: solver, rtol, atol, dt, tau, ...


class LanguageModel(nn.Module):
    """Next-token model over a recurrent core.

    Args:
        vocab_size: V.
        cell: "rnn", "gru", "lstm" or "gru-ode".
        embed_size, hidden_size, num_layers: E, H and the depth of the core.
        dropout: probability on the embeddings, between layers and on the core's output.
        tie_weights: share the embedding matrix with the decoder (Press & Wolf 2017); needs H == E.
        **cell_options: passed to the core (gru-ode: solver, backward_solver, sensealg, rtol, atol,
            dt, tau, learn_tau, reset_after, backend).
    """

    def __init__(self, vocab_size: int, cell: str = "gru-ode", embed_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, dropout: float = 0.0,
                 tie_weights: bool = False, **cell_options):
        super().__init__()
        if tie_weights and hidden_size != embed_size:
            raise InputError(f"tie_weights needs hidden_size == embed_size (got {hidden_size} and "
                             f"{embed_size}): make them equal or set tie_weights=False")
        self.core = make_cell(cell, embed_size, hidden_size, num_layers, dropout, **cell_options)
        self._config = ModelConfig(vocab_size, cell, embed_size, hidden_size, num_layers, float(dropout),
                                   bool(tie_weights), dict(cell_options))
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        # uniform ±0.1 embedding/decoder and zero decoder bias, as pytorch/examples word_language_model
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    @classmethod
    def from_config(cls, cfg: ModelConfig | dict) -> "LanguageModel":
        """Rebuild from a :class:`ModelConfig` or its ``asdict`` (as stored in a checkpoint)."""
        if isinstance(cfg, dict):
            cfg = ModelConfig(**cfg)
        return cls(cfg.vocab_size, cfg.cell, cfg.embed_size, cfg.hidden_size, cfg.num_layers,
                   cfg.dropout, cfg.tie_weights, **cfg.cell_options)

    @property
    def config(self) -> ModelConfig:
        return ModelConfig(**{**asdict(self._config), "cell_options": dict(self._config.cell_options)})

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
