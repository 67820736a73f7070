"""Learning from the annotators' corrections: export, fine-tuning, the per-project models."""
