"""Task images: references -> bytes -> decoded RGB, behind a network guard, cached decoded.

Knows nothing of OCR or Label Studio.
"""
