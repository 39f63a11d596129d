"""Measuring a trained model: perplexity, generation metrics, sampling."""
