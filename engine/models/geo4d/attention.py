"""Transformer layers of the DynamiCrafter 3D UNet: spatial transformers with decoupled image
cross-attention, and temporal self-attention transformers.

Module and attribute names follow the official `lvdm/modules/attention.py` so that the official
state dict loads with strict=True. Attention runs through `F.scaled_dot_product_attention`.

Layouts: spatial transformers take `(b t) c h w`, temporal transformers take `b c t h w`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ...errors import InputError

# DynamiCrafter's context: 77 CLIP text tokens, then the image tokens (16 per frame in Geo4D).
TEXT_TOKENS = 77
# Attention weights computed at once by the float32 CPU path (64M floats = 256 MB).
MATH_ATTENTION_ELEMENTS = 1 << 26


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[N, L, heads*d] -> [N, heads, L, d]."""
    n, length, inner = x.shape
    return x.reshape(n, length, heads, inner // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[N, heads, L, d] -> [N, L, heads*d]."""
    n, heads, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * d)


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                         causal: bool = False) -> torch.Tensor:
    """Softmax attention with scale 1/sqrt(head dim). q [N, Lq, heads*d], k and v [N, Lk, heads*d]
    -> [N, Lq, heads*d]. `causal`: query i attends to keys 0..i only.

    float32 on CPU uses the math backend on contiguous heads (as the original's rearrange makes
    them): that reproduces the original's explicit softmax(QKᵀ/√d)V to rounding (bit for bit when
    √(1/√d) is exact, as for the fixtures' d = 16), while the CPU flash kernel's blockwise softmax
    drifts by ~1e-5 over the UNet (the fixtures' tolerance). Everything else gets the fused kernels."""
    q, k, v = _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads)
    if q.device.type == "cpu" and q.dtype == torch.float32:
        return _merge_heads(_math_attention(q.contiguous(), k.contiguous(), v.contiguous(), causal))
    return _merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=causal))


def _math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """The math backend, a few sequences at a time so that the [N, heads, Lq, Lk] weights stay
    under MATH_ATTENTION_ELEMENTS (the full-size UNet's 2560-token frames would need 4 GB at once)."""
    n, heads, lq, _ = q.shape
    rows = max(1, MATH_ATTENTION_ELEMENTS // (heads * lq * k.shape[2]))
    with sdpa_kernel(SDPBackend.MATH):
        if n <= rows:  # also the traced (ONNX export) case, so the graph has no batch slicing
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return torch.cat([F.scaled_dot_product_attention(q[i:i + rows], k[i:i + rows], v[i:i + rows],
                                                         is_causal=causal)
                          for i in range(0, n, rows)])


def relative_position_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                                table_k: torch.Tensor, table_v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """multi_head_attention with the official relative-position terms: the logit of query i and key j
    gains q_i . table_k[i, j] (scaled as q_i . k_j), and the output of query i gains sum_j p_ij table_v[i, j]
    (tables [Lq, Lk, d], RelativePosition). Computed explicitly: the second term needs the weights p."""
    q, k, v = _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads)
    scale = q.shape[-1] ** -0.5
    logits = (q @ k.transpose(-1, -2)) * scale + torch.einsum("nhid,ijd->nhij", q, table_k) * scale
    if causal:
        future = torch.ones(logits.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        logits = logits.masked_fill(future, float("-inf"))
    weights = logits.softmax(dim=-1)
    return _merge_heads(weights @ v + torch.einsum("nhij,ijd->nhid", weights, table_v))


class RelativePosition(nn.Module):
    """Learned embeddings [2 L + 1, d] of the offset j - i from query i to key j, clamped to -L..L
    (L: the official max_relative_position, the UNet's temporal_length)."""

    def __init__(self, dim_head: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.embeddings_table = nn.Parameter(torch.zeros(2 * max_distance + 1, dim_head))

    def forward(self, length_q: int, length_k: int) -> torch.Tensor:
        """[length_q, length_k, d]: entry (i, j) is the embedding of offset j - i."""
        device = self.embeddings_table.device
        offsets = torch.arange(length_k, device=device)[None] - torch.arange(length_q, device=device)[:, None]
        offsets = offsets.clamp(-self.max_distance, self.max_distance)
        return self.embeddings_table[offsets + self.max_distance]


@dataclass(frozen=True)
class ContextKeysValues:
    """One cross-attention layer's keys and values of its context, each [..., L, heads*d]: those of the
    text tokens, and with image cross-attention those of the image tokens (else None)."""

    text_k: torch.Tensor
    text_v: torch.Tensor
    image_k: torch.Tensor | None = None
    image_v: torch.Tensor | None = None

    def map(self, fn) -> "ContextKeysValues":
        """The same keys and values, each passed through `fn` (a layout change)."""
        return ContextKeysValues(*(None if tensor is None else fn(tensor) for tensor in
                                   (self.text_k, self.text_v, self.image_k, self.image_v)))


class CrossAttention(nn.Module):
    """Self-attention (context None) or cross-attention to a context's keys and values
    (`project_context`, computed once for a constant context: UNet3D.project_context).

    With `image_cross_attention`, the context is 77 text tokens and image tokens: the query attends to
    the text tokens and, separately with its own key/value projections, to the image tokens; the two
    results are added, the image one scaled by 1, or with `image_scale_learnable` by tanh(alpha) + 1
    (the official learnable scale, a scalar parameter per layer).

    `relative_length` (the official relative_position, in temporal attention): learned relative-position
    embeddings of offsets up to that many positions, between query and key (or text token) indices
    (relative_position_attention).
    """

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int,
                 dropout: float = 0.0, image_cross_attention: bool = False, image_scale_learnable: bool = False,
                 relative_length: int | None = None):
        super().__init__()
        inner_dim = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.image_cross_attention = image_cross_attention
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner_dim, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner_dim, bias=False)
        self.image_scale_learnable = image_cross_attention and image_scale_learnable
        if self.image_scale_learnable:
            self.alpha = nn.Parameter(torch.tensor(0.0))  # scale 1 until trained, as the official init
        self.relative_length = relative_length
        if relative_length is not None:
            self.relative_position_k = RelativePosition(dim_head, relative_length)
            self.relative_position_v = RelativePosition(dim_head, relative_length)

    def project_context(self, text: torch.Tensor, image: torch.Tensor) -> ContextKeysValues:
        """Keys and values of the text tokens [..., 77, C] and (with image cross-attention; the official
        code drops them without) of the image tokens [..., L, C]."""
        if not self.image_cross_attention:
            return ContextKeysValues(self.to_k(text), self.to_v(text))
        if image.shape[-2] == 0:  # attention over no keys has no answer
            raise InputError(f"the UNet's context holds only the {TEXT_TOKENS} text tokens; its image "
                             "cross-attention needs the image tokens after them",
                             "pass the context the conditioning makes (text tokens, then each frame's image tokens)")
        return ContextKeysValues(self.to_k(text), self.to_v(text), self.to_k_ip(image), self.to_v_ip(image))

    def forward(self, x: torch.Tensor, context: ContextKeysValues | torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """x [N, Lq, query_dim]; context: keys and values [N, L, heads*d] (project_context), or the context's
        tokens [N, L, context_dim], projected here (GeometryCrafter's UNet, whose context is each window's).
        `causal` (self-attention only): position i attends to positions 0..i."""
        if isinstance(context, torch.Tensor):
            # The official code keeps only the text tokens when image cross-attention is off.
            context = self.project_context(context[:, :TEXT_TOKENS], context[:, TEXT_TOKENS:])
        q = self.to_q(x)
        k, v = (self.to_k(x), self.to_v(x)) if context is None else (context.text_k, context.text_v)
        if self.relative_length is None:
            out = multi_head_attention(q, k, v, self.heads, causal)
        else:
            tables = self.relative_position_k(q.shape[1], k.shape[1]), self.relative_position_v(q.shape[1], k.shape[1])
            out = relative_position_attention(q, k, v, self.heads, *tables, causal)
        del k, v  # not held through the rest: at 576x1024 a spatial layer's are 0.6 GB of the diffusion's peak
        if context is not None and context.image_k is not None:
            image_out = multi_head_attention(q, context.image_k, context.image_v, self.heads)
            if self.image_scale_learnable:
                image_out = image_out * (torch.tanh(self.alpha) + 1)
            out = out + image_out
        return self.to_out(out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


# Tokens per feed-forward call (FeedForward.max_tokens). Its hidden activations, 8x the width before the gate,
# are the largest tensors of a Geo4D UNet call at 320x512: 1.9 GB in fp32 per window at once.
FEED_FORWARD_TOKENS = 16384


class FeedForward(nn.Module):
    """Gated (GEGLU) MLP with 4x hidden width; `net` indices match the official keys. x [..., dim] -> [..., dim].

    `net` runs on at most `max_tokens` tokens at a time (None: all at once). Each token's output is its own,
    so the values are the same (bit for bit on the CPU), and the hidden activations stay bounded."""

    def __init__(self, dim: int, dropout: float = 0.0, mult: int = 4, max_tokens: int | None = FEED_FORWARD_TOKENS):
        super().__init__()
        inner_dim = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim))
        self.max_tokens = max_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[:-1].numel()
        # ONNX export traces one graph for every size: the whole call, as the official.
        if self.max_tokens is None or tokens <= self.max_tokens or torch.onnx.is_in_onnx_export():
            return self.net(x)
        flat = x.reshape(tokens, x.shape[-1])
        out = None
        for start in range(0, tokens, self.max_tokens):
            part = self.net(flat[start:start + self.max_tokens])
            if out is None:  # the parts' dtype: under autocast not the input's
                out = part.new_empty(tokens, part.shape[-1])
            out[start:start + part.shape[0]] = part
        return out.reshape(*x.shape[:-1], out.shape[-1])


class BasicTransformerBlock(nn.Module):
    """Pre-norm block: self-attention, then attention to the context (self-attention again when the
    context is None, as in the temporal transformers), then the feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 image_cross_attention: bool = False, image_scale_learnable: bool = False,
                 relative_length: int | None = None):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head, relative_length=relative_length)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head, image_cross_attention=image_cross_attention,
                                    image_scale_learnable=image_scale_learnable, relative_length=relative_length)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: ContextKeysValues | None = None, causal: bool = False) -> torch.Tensor:
        x = self.attn1(self.norm1(x), causal=causal) + x
        x = self.attn2(self.norm2(x), context, causal) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention over the h*w positions of each frame. x [(b t), c, h, w]; context: the keys and values
    of each block's cross-attention (`attn2`), [(b t), L, heads*d] (77 text tokens + that frame's image
    tokens)."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int,
                 use_linear: bool, image_cross_attention: bool, image_scale_learnable: bool = False):
        super().__init__()
        inner_dim = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner_dim) if use_linear else nn.Conv2d(channels, inner_dim, 1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, heads, dim_head, context_dim, image_cross_attention, image_scale_learnable)
            for _ in range(depth)
        ])
        self.proj_out = nn.Linear(inner_dim, channels) if use_linear else nn.Conv2d(inner_dim, channels, 1)

    def forward(self, x: torch.Tensor, context: dict[CrossAttention, ContextKeysValues]) -> torch.Tensor:
        n, _, h, w = x.shape
        y = self.norm(x)
        if not self.use_linear:
            y = self.proj_in(y)
        y = y.flatten(2).transpose(1, 2).contiguous()  # [n, h*w, c]
        if self.use_linear:
            y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, context[block.attn2])
        if self.use_linear:
            y = self.proj_out(y)
        y = y.transpose(1, 2).reshape(n, -1, h, w).contiguous()
        if not self.use_linear:
            y = self.proj_out(y)
        return y + x


class TemporalTransformer(nn.Module):
    """Attention along time, independently at every pixel. x [b, c, t, h, w] -> same shape.

    Self-attention; with `context_dim` (the official only_self_att false, the UNet's init_attn alone),
    each block's second attention attends instead to the clip's text tokens (as the official code, which
    pairs each pixel with one frame's copy of them, only for h*w a multiple of t). With `use_linear` False
    the projections are 1x1 Conv1d (the UNet's `init_attn`). `causal_length` (the official
    causal_attention's temporal_length): frame i attends to frames 0..i only, in clips of at most that
    many frames (the official mask's size). `relative_length` (the official
    relative_position's temporal_length): both attentions of each block add relative-position embeddings
    of frame offsets clamped to that length (CrossAttention)."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, use_linear: bool,
                 causal_length: int | None = None, relative_length: int | None = None,
                 context_dim: int | None = None):
        super().__init__()
        inner_dim = heads * dim_head
        self.use_linear = use_linear
        self.causal_length = causal_length
        self.attends_to_context = context_dim is not None
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner_dim) if use_linear else nn.Conv1d(channels, inner_dim, 1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, heads, dim_head, context_dim, relative_length=relative_length)
            for _ in range(depth)
        ])
        self.proj_out = nn.Linear(inner_dim, channels) if use_linear else nn.Conv1d(inner_dim, channels, 1)

    def forward(self, x: torch.Tensor, context: dict[CrossAttention, ContextKeysValues] | None = None
                ) -> torch.Tensor:
        """context (with `context_dim`): each block's cross-attention keys and values, [(b t), L, heads*d]."""
        b, c, t, h, w = x.shape
        if self.attends_to_context and (h * w) % t:
            raise InputError(f"the UNet's init_attn attends to the text per pixel, which the official code "
                             f"computes only for h*w a multiple of the frames; got {h}x{w} and {t} frames",
                             "use a latent size whose h*w is a multiple of the window's frames")
        causal = self.causal_length is not None
        if causal and t > self.causal_length:
            raise InputError(f"the UNet's causal temporal attention got {t} frames; its mask covers "
                             f"temporal_length = {self.causal_length}",
                             f"run windows of at most {self.causal_length} frames")
        # GroupNorm statistics span all frames of a clip, as in the original.
        y = self.norm(x).permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c).contiguous()
        y = self.proj_in(y) if self.use_linear else self.proj_in(y.transpose(1, 2)).transpose(1, 2)
        for block in self.transformer_blocks:
            # Each clip's text tokens (the same for all its frames), for each of its pixels.
            keys_values = None if not self.attends_to_context else context[block.attn2].map(
                lambda kv: kv.reshape(b, t, *kv.shape[1:])[:, 0].repeat_interleave(h * w, dim=0))
            y = block(y, keys_values, causal)
        y = self.proj_out(y) if self.use_linear else self.proj_out(y.transpose(1, 2)).transpose(1, 2)
        y = y.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2).contiguous()
        return y + x
