"""How the per-video work of an evaluation runs.

An engine takes validated inputs and settings and returns the core's result; the task around it
(`evaluator.tasks`) does the rest (statistics, report, record). `local` runs the pure core in
this process.
"""
