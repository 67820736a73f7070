"""The HTTP face: routes, typed dependencies, lifespan, auth, admission, request logs.

The only package that imports FastAPI (with `api.py`, which wires it together).
"""
