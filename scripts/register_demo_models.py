"""Register the demo poster models (evaluated by `make demo`) as versions of a registered model.

Each version is linked to its evaluation run (the model is logged inside it, and the version
gets the tag `evaluation_run_id`); version --champion gets the alias `champion`.

Usage: python scripts/register_demo_models.py [--tracking-uri sqlite:///mlflow.db]
[--name poster-ranker] [--versions 1,2] [--champion 1]
"""

from __future__ import annotations

import argparse
import os
import sys

from evaluator.errors import InputError, TrackingError
from evaluator.integrations.register_command import register_poster_versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--name", default="poster-ranker")
    parser.add_argument("--versions", default="1,2")
    parser.add_argument("--champion", default="1", help="version to alias 'champion' ('' = none)")
    args = parser.parse_args()
    try:
        done = register_poster_versions(
            args.tracking_uri,
            args.name,
            [v.strip() for v in args.versions.split(",") if v.strip()],
            champion=args.champion or None,
        )
    except (InputError, TrackingError) as exc:
        print(f"register_demo_models: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, InputError) else 3)
    for r in done:
        what = "registered" if r.created else "already registered"
        print(f"{r.name} version {r.version}: {what}, evaluation run {r.run_id}")
    if args.champion:
        print(f"{args.name} version {args.champion} holds the alias 'champion'")


if __name__ == "__main__":
    main()
