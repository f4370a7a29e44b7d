"""End-to-end jobs over the library: market -> features -> rewards -> generators -> render -> evaluate."""

from adcraft.pipeline.demo import DemoConfig, DemoResult, run_demo
from adcraft.pipeline.reward_jobs import REWARD_KINDS, load_reward_model, score_creatives, train_reward_model

__all__ = [
    "REWARD_KINDS", "DemoConfig", "DemoResult", "load_reward_model", "run_demo", "score_creatives",
    "train_reward_model",
]
