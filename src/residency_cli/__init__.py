"""residency: residency-aware task dispatch on AWS ECS Anywhere."""

__version__ = "0.1.0"
