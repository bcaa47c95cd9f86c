"""video-evaluator: evaluate video ML models and record every evaluation in MLflow."""
