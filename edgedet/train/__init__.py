"""Fine-tuning on COCO-format data (torch): anchor matching, focal + Huber box loss, resumable training."""

from .trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
