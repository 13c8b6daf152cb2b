"""Geo4D's AutoencoderKL (the Stable Diffusion VAE) with the point-map uncertainty adaptors.

Parameter names and shapes are those of the official checkpoints after stripping
`first_stage_model.` (model.ckpt) or `model.` (vae.ckpt), so `load_state_dict(strict=True)` takes
them as they are. The constructor takes the official params dict (`embed_dim`, `ddconfig`,
`adaptorconfig`). Images are `[N, 3, H, W]` in [-1, 1]; latents `[N, 4, H/8, W/8]` (unscaled: the
diffusion space is these times `scale_factor`, see `encode_frames` / `decode_frames`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Upsample, clips_to_frames, frames_to_clips, set_upsample
from .device_choices import choices_for


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = _conv3(cin, cout)
        self.norm2 = _norm(cout)
        self.conv2 = _conv3(cout, cout)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The same values with fewer full-resolution activations alive at once (they set the VAEs' peak
        # memory): SiLU and the residual in place on tensors this block made, and conv1's output released
        # (norm2's replaces it) before conv2 allocates its own.
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = F.silu(self.norm2(h), inplace=True)
        h = self.conv2(h)
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        h += x
        return h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, 1x1-conv projections."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        # [b, 1, hw, c]: one head, tokens = pixels, contiguous as SDPA's fused kernels want them (a
        # transposed view sends it down the math path). On channels-last tensors this copies nothing.
        q, k, v = (m(n).permute(0, 2, 3, 1).reshape(b, 1, h * w, c).contiguous() for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(out.reshape(b, h, w, c).permute(0, 3, 1, 2))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Asymmetric (right/bottom) zero padding, as the checkpoints were trained with.
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Level(nn.Module):
    """One resolution level: `block` ResnetBlocks, optional `attn`, optional resampler."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)

    def layers(self) -> list[nn.Module]:
        """The blocks in the order they run, each attention after its block. Callers run them one by one
        (`for layer in level.layers(): h = layer(h)`), so that no frame keeps the level's input alive after
        its first block, as a `run_blocks(h)` method's caller would through the whole level."""
        if not len(self.attn):
            return list(self.block)
        return [layer for pair in zip(self.block, self.attn) for layer in pair]


class _Mid(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image [N, in_channels, H, W] -> moments features [N, 2*z_channels, H/f, W/f], f = 2^(levels-1)."""

    def __init__(self, *, ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution,
                 z_channels, double_z=True, **_unused):
        super().__init__()
        self.conv_in = _conv3(in_channels, ch)
        self.down = nn.ModuleList()
        res, block_in = resolution, ch
        for level, mult in enumerate(ch_mult):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(block_in, ch * mult))
                block_in = ch * mult
                if res in attn_resolutions:
                    attns.append(AttnBlock(block_in))
            down = _Level(blocks, attns)
            if level != len(ch_mult) - 1:
                down.downsample = Downsample(block_in)
                res //= 2
            self.down.append(down)
        self.mid = _Mid(block_in)
        self.norm_out = _norm(block_in)
        self.conv_out = _conv3(block_in, 2 * z_channels if double_z else z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for down in self.down:
            for layer in down.layers():
                h = layer(h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Decoder(nn.Module):
    """Latent [N, z_channels, h, w] -> (image [N, out_ch, h*f, w*f], last features before norm_out
    [N, ch*ch_mult[0], h*f, w*f]); the features feed the uncertainty adaptor."""

    def __init__(self, *, ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, resolution,
                 z_channels, **_unused):
        super().__init__()
        block_in = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = _conv3(z_channels, block_in)
        self.mid = _Mid(block_in)
        ups = []
        for level in reversed(range(len(ch_mult))):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, ch * ch_mult[level]))
                block_in = ch * ch_mult[level]
                if res in attn_resolutions:
                    attns.append(AttnBlock(block_in))
            up = _Level(blocks, attns)
            if level != 0:
                up.upsample = Upsample(block_in)
                res *= 2
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        self.norm_out = _norm(block_in)
        self.conv_out = _conv3(block_in, out_ch)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mid(self.conv_in(z))
        for up in reversed(self.up):
            for layer in up.layers():
                h = layer(h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True)), h


class EncoderAdaptor(nn.Module):
    """Residual image-space adaptor before the encoder (`encode_with_adaptor`). Not on Geo4D's
    inference path; present so that the checkpoints load strictly."""

    def __init__(self, *, ch, ch_mult, num_res_blocks, in_channels, **_unused):
        super().__init__()
        if len(ch_mult) != 1:
            raise ValueError("the VAE adaptor has exactly one level (adaptorconfig.ch_mult of length 1)")
        width = ch * ch_mult[0]
        self.conv_in = _conv3(in_channels, ch)
        blocks = [ResnetBlock(ch if i == 0 else width, width) for i in range(num_res_blocks)]
        self.down = nn.ModuleList([_Level(blocks, [])])
        self.norm_out = _norm(width)
        self.conv_out = _conv3(width, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for layer in self.down[0].layers():
            h = layer(h)
        return x + self.conv_out(F.silu(self.norm_out(h), inplace=True))


class DecoderAdaptor(nn.Module):
    """Uncertainty head: decoder features before norm_out [N, ch, H, W] -> raw uncertainty [N, out_ch, H, W]."""

    def __init__(self, *, ch, out_ch, ch_mult, num_res_blocks, **_unused):
        super().__init__()
        if len(ch_mult) != 1:
            raise ValueError("the VAE adaptor has exactly one level (adaptorconfig.ch_mult of length 1)")
        width = ch * ch_mult[0]
        self.up = nn.ModuleList([_Level([ResnetBlock(width, width) for _ in range(num_res_blocks + 1)], [])])
        self.norm_out = _norm(width)
        self.conv_out = _conv3(width, out_ch)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for layer in self.up[0].layers():
            h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


@dataclass
class Posterior:
    """Diagonal Gaussian over the (unscaled) latent; each [N, z, h, w]."""

    mean: torch.Tensor
    logvar: torch.Tensor  # clamped to [-30, 20] as the official DiagonalGaussianDistribution

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """mean + std * noise in float32 whatever the VAE's precision (no second rounding of the latent)."""
        return self.mean.float() + torch.exp(0.5 * self.logvar.float()) * noise.float()


class AutoencoderKL(nn.Module):
    def __init__(self, params: dict):
        super().__init__()
        dd = params["ddconfig"]
        if not dd.get("double_z", True):
            raise ValueError("AutoencoderKL needs ddconfig.double_z = true (a Gaussian posterior)")
        embed_dim = params["embed_dim"]
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        self.quant_conv = nn.Conv2d(2 * dd["z_channels"], 2 * embed_dim, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(embed_dim, dd["z_channels"], kernel_size=1)
        adaptor = params.get("adaptorconfig")
        if adaptor is not None:
            if adaptor["ch"] * adaptor["ch_mult"][0] != dd["ch"] * dd["ch_mult"][0]:
                raise ValueError("adaptorconfig width must equal the decoder's last feature width")
            self.encoder_adaptor = EncoderAdaptor(**adaptor)
            self.decoder_adaptor = DecoderAdaptor(**adaptor)

    def encode(self, images: torch.Tensor) -> Posterior:
        moments = self.quant_conv(self.encoder(images))
        mean, logvar = torch.chunk(moments, 2, dim=1)
        return Posterior(mean, torch.clamp(logvar, -30.0, 20.0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent [N, 4, h, w] -> image [N, out_ch, 8h, 8w]."""
        return self.decoder(self.post_quant_conv(z))[0]

    def decode_with_confidence(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latent -> [N, out_ch + 1, 8h, 8w]: the decoded image (xyz for the point-map VAE)
        followed by the adaptor's raw uncertainty (softplus of it is the confidence)."""
        image, features = self.decoder(self.post_quant_conv(z))
        return torch.cat([image, self.decoder_adaptor(features)], dim=1)


def compile_vae(vae: AutoencoderKL) -> None:
    """Compile the VAE's encoder, decoder and uncertainty head in place with torch.compile (inductor),
    one graph per input shape, the weights frozen into it as constants (inference only: later changes
    to the parameters are not seen). The first call of each shape compiles (tens of seconds on a CPU;
    inductor caches the code on disk, TORCHINDUCTOR_CACHE_DIR); outputs equal eager up to float rounding."""
    for name in ("encoder", "decoder", "decoder_adaptor"):
        module = getattr(vae, name, None)
        if module is not None:
            module.compile(dynamic=False, options={"freezing": True})


def _module_dtype(module) -> torch.dtype:
    """The dtype the VAE's inputs must have. A runtime wrapper without parameters (the ONNX
    Runtime backend's OnnxVAE) states it as `dtype`."""
    return next(module.parameters()).dtype if isinstance(module, nn.Module) else module.dtype


def _layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@torch.no_grad()
def encode_frames(vae: AutoencoderKL, video: torch.Tensor, scale_factor: float, chunk: int | None = None,
                  noise: torch.Tensor | None = None, channels_last: bool | None = None) -> torch.Tensor:
    """Video [B, 3, T, H, W] in [-1, 1] -> diffusion latent [B, 4, T, H/8, W/8] (float32),
    `scale_factor * (mean + std * noise)` with `noise` [(B T), 4, H/8, W/8] in frame order, or the
    posterior mean when `noise` is None. Frames go through the VAE `chunk` at a time, in channels-last
    layout or not: None takes the device's choice (device_choices.py)."""
    choices = choices_for(video.device)
    chunk = chunk or choices.encode_chunk
    channels_last = choices.channels_last if channels_last is None else channels_last
    frames = clips_to_frames(video)
    dtype = _module_dtype(vae)
    out = []
    for i in range(0, frames.shape[0], chunk):
        post = vae.encode(_layout(frames[i:i + chunk].to(dtype), channels_last))
        z = post.mean if noise is None else post.sample(noise[i:i + chunk])
        out.append(z.float().contiguous() * scale_factor)
    return frames_to_clips(torch.cat(out), video.shape[0])


@torch.no_grad()
def decode_frames(vae: AutoencoderKL, latent: torch.Tensor, scale_factor: float, chunk: int | None = None,
                  with_confidence: bool = False, channels_last: bool | None = None,
                  upsample: str | None = None) -> torch.Tensor:
    """Diffusion latent [B, 4, T, h, w] -> [B, C, T, 8h, 8w] float32, C = 3 (or 4 with the raw
    uncertainty channel). Decoded `chunk` frames at a time so memory stays bounded, in channels-last
    layout or not, the decoder's Upsamples computed as `upsample` says (blocks.Upsample; a torch module's
    setting stays until the next call): None takes the device's choice (device_choices.py)."""
    choices = choices_for(latent.device)
    chunk = chunk or choices.decode_chunk
    channels_last = choices.channels_last if channels_last is None else channels_last
    if isinstance(vae, nn.Module):  # not the ONNX Runtime stand-in
        set_upsample(vae, upsample or choices.upsample)
    frames = clips_to_frames(latent)
    dtype = _module_dtype(vae)
    decode = vae.decode_with_confidence if with_confidence else vae.decode
    out = [decode(_layout((frames[i:i + chunk] * (1.0 / scale_factor)).to(dtype), channels_last)).float().contiguous()
           for i in range(0, frames.shape[0], chunk)]
    return frames_to_clips(torch.cat(out), latent.shape[0])
