"""Measuring a trained model: perplexity and the generation-metric protocol (evaluate), and the metrics
themselves as pure functions (metrics)."""
