"""Step 5: ranks -> Recall@k / MRR@k with bootstrap intervals, in one tidy table for every model."""
