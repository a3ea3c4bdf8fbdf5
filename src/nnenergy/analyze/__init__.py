"""Dataset analysis: additivity, FLOPs versus energy, distributions, measurement noise."""
