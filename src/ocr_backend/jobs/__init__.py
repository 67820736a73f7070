"""Bulk work that outlives a /predict: a queue on disk, who got which result, progress.

Label Studio sends every selected task in one /predict and waits at most
100 s for it. What is not read by PREDICT_DEADLINE is answered "not yet",
read in the background, and written to Label Studio through its API, once.
Nothing here imports FastAPI.
"""
