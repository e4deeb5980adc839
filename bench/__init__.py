"""`make bench`: throughput figures as ratios against baselines measured in the same run."""
