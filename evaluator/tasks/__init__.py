"""The evaluation tasks, each one pipeline: config -> io -> engine/core -> report -> tracking.

`poster` (the default task), `episode`, and `multirun` (Hydra's ``-m``: a parent run that
compares its children).
"""
