"""End-to-end jobs over the library: market -> features -> rewards -> generators -> render -> evaluate."""

from adcraft.pipeline.demo import DemoConfig, DemoResult, run_demo
from adcraft.pipeline.reward_jobs import score_creatives, train_reward_model

__all__ = ["DemoConfig", "DemoResult", "run_demo", "score_creatives", "train_reward_model"]
