"""A tiny, randomly initialised Stable Diffusion + Canny ControlNet, saved in the diffusion backend's layout.

Built like diffusers' own pipeline tests build theirs (``get_dummy_components()``): a two-block UNet, VAE
and ControlNet with a handful of channels, a one-layer CLIP text encoder and a character-level CLIP
tokenizer whose ``vocab.json`` and ``merges.txt`` are written here, so nothing is downloaded. Its
pictures are noise-like; it exists to test and time the backend's code path (loading included) on a
CPU, and to check an installation before real weights are copied in.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from adcraft.render.diffusion import import_diffusion

_SPECIAL = ("<|startoftext|>", "<|endoftext|>")
_CHARS = string.ascii_lowercase + string.digits + ",.-#%!&'"
_MERGES = ("s t", "st u", "stu d", "i o</w>", "s h", "a d", "o w</w>")
MAX_TOKENS = 16


def tiny_tokenizer_files(folder: Path) -> Path:
    """Write a character-level CLIP BPE vocabulary (``vocab.json``, ``merges.txt``) into ``folder``."""
    vocab = {token: i for i, token in enumerate(_SPECIAL)}
    for suffix in ("", "</w>"):
        for char in _CHARS:
            vocab[char + suffix] = len(vocab)
    for merge in _MERGES:
        vocab[merge.replace(" ", "")] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": MAX_TOKENS}), encoding="utf-8")
    return folder


def tiny_diffusion_components(tokenizer_dir: Path, seed: int = 0, inpainting_unet: bool = False) -> dict[str, Any]:
    """The pipeline's components, randomly initialised from ``seed`` (tokenizer written to ``tokenizer_dir``).

    ``inpainting_unet``: a 9-channel UNet (latents + mask + masked image, as SD inpainting checkpoints
    have) instead of SD 1.5's 4-channel one.
    """
    import torch

    diffusers, transformers = import_diffusion()
    tokenizer = transformers.CLIPTokenizer.from_pretrained(tiny_tokenizer_files(tokenizer_dir), local_files_only=True)
    blocks = {"block_out_channels": (8, 16), "layers_per_block": 1, "norm_num_groups": 4, "attention_head_dim": 2,
              "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"), "cross_attention_dim": 8}
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(sample_size=16, in_channels=9 if inpainting_unet else 4, out_channels=4,
                                          up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **blocks)
    controlnet = diffusers.ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(4, 8), **blocks)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4)
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=MAX_TOKENS, projection_dim=8,
    ))
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": scheduler, "controlnet": controlnet}


def write_tiny_diffusion_weights(root: Path, seed: int = 0, inpainting_unet: bool = False,
                                 base_model: str = "stable-diffusion-v1-5",
                                 controlnet: str = "controlnet-canny") -> Path:
    """Save tiny components with ``save_pretrained`` under ``root`` in the backend's layout; returns ``root``."""
    root = Path(root)
    base = root / base_model
    components = tiny_diffusion_components(base / "tokenizer", seed, inpainting_unet)
    for name in ("unet", "vae", "text_encoder", "scheduler"):
        components[name].save_pretrained(base / name)
    components["controlnet"].save_pretrained(root / controlnet)
    return root
