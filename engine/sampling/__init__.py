"""Diffusion sampling: the noise schedule and the DDIM sampler."""
