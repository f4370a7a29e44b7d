"""Generators: the combination policy trained by RL (GenCO), the background prompt model trained with
DPO/PCPO (CAIG), and demand-aware best-of-N selection and editing of images (UA-InfoNCE)."""
