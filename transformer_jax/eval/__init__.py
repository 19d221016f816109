"""Evaluation with external harnesses (lm-evaluation-harness: `lm_eval_adapter`)."""
