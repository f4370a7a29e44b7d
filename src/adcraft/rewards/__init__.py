"""Reward models: point-wise CTR, pairwise (CAIG), multi-instance (GenCO), the demand utility h(v)
and the utility-aware contrastive encoder (UA-InfoNCE), each saved as a folder holding
``config.json`` and ``model.safetensors`` (see :mod:`adcraft.learning.artifacts`).
"""
