"""The reference model: a small decoder-only transformer (after nanoGPT), and its FLOP counts.

`analytical_flops_per_step` is the formula the bundle cites; `counted_flops_per_step` counts the
same step once with `torch.utils.flop_counter.FlopCounterMode` on a meta-device copy, outside the
timed loop (counting inline costs about 10 %, and on a CPU the fused attention operator is
missing from the counter's registry, while on the meta device attention decomposes into counted
matrix multiplies).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from trainmark.reference_runner.config import RunConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, length, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(batch, length, width))


class Block(nn.Module):
    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(), nn.Linear(4 * config.n_embd, config.n_embd)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """Token and position embeddings, n_layer pre-norm blocks, a final norm, a tied output head."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.sequence_length, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying (GPT-2)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            if self.config.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters; a tied weight counts once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique), sum(p.numel() for p in unique if p.requires_grad)


def block_parameters(config: RunConfig) -> int:
    """Parameters of the transformer blocks that take part in matrix multiplies (norms left out)."""
    d = config.n_embd
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return config.n_layer * per_layer


def flop_parameters(config: RunConfig) -> int:
    """N in 6N: the block parameters plus the tied embedding, counted once as the output head
    (position embeddings and norms are left out), as nanoGPT counts it."""
    return block_parameters(config) + config.vocab_size * config.n_embd


def recomputed_parameters(config: RunConfig) -> int:
    """Block parameters whose matrix multiplies activation checkpointing reruns: all but each block's
    last projection, whose output no backward needs (PyTorch's non-reentrant checkpoint stops
    recomputing once every saved tensor is back)."""
    d = config.n_embd
    return config.n_layer * (8 * d * d + 8 * d)


ANALYTICAL_SOURCE = (
    "6 N + 12 L d s FLOPs per token (Kaplan et al. 2020, 'Scaling Laws for Neural Language "
    "Models', sec. 2.1; attention term of Chowdhery et al. 2022, PaLM, appendix B; as nanoGPT's "
    "estimate_mfu), plus 2 N_recomputed + 4 L d s when activation checkpointing reruns the "
    "blocks' forward up to their last projection"
)


def analytical_flops_per_step(config: RunConfig) -> float:
    """Training FLOPs of one optimizer step over all ranks, by formula (ANALYTICAL_SOURCE).

    Per token: 6 N for forward and backward through the weights plus 12 L d s for attention
    scores and values; activation checkpointing reruns each block's forward up to its last
    projection (2 N_recomputed + 4 L d s).
    """
    tokens = config.global_batch_size * config.sequence_length
    attention = config.n_layer * config.n_embd * config.sequence_length
    per_token = 6.0 * flop_parameters(config) + 12.0 * attention
    if config.activation_checkpointing:
        per_token += 2.0 * recomputed_parameters(config) + 4.0 * attention
    return per_token * tokens


def counted_flops_per_step(config: RunConfig) -> float:
    """FLOPs of one optimizer step over all ranks, counted by FlopCounterMode on a meta copy.

    One micro-batch is counted (forward and backward), then multiplied by the micro-batches in
    the global batch (accumulation x ranks); matrix multiplies only, as the counter counts them.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = TinyGPT(config)
        tokens = torch.zeros(config.micro_batch_size, config.sequence_length, dtype=torch.long)
    model.train()
    with FlopCounterMode(display=False) as counter:
        _, loss = model(tokens, tokens)
        loss.backward()
    return float(counter.get_total_flops()) * (config.global_batch_size // config.micro_batch_size)
