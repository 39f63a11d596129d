"""Measuring a trained model: what to score and how (config: EvalConfig), loading a checkpoint for it
(loading), perplexity and the evaluate command's report (evaluate), sampling and the generation protocol
(generation), and the metrics themselves as pure functions (metrics)."""
