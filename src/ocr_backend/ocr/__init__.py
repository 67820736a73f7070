"""The OCR core: text-line types, EasyOCR readers and their weights, the ONNX detector.

Knows nothing of Label Studio or HTTP; `engine.py` serves what is built here.
"""
