"""Datasets: COCO-format loading with validation, and a synthetic detection dataset generator."""
