"""The OCR core: text-line types, readers and their weights, the engines that serve them.

Knows nothing of Label Studio or HTTP. `engine.py` is the face the service
sees; `local.py` and `cluster.py` are the engines behind it.
"""
