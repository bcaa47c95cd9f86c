"""``python -m evaluator`` runs ``video-eval``."""

from evaluator.cli import main

if __name__ == "__main__":
    main()
