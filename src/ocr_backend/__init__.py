"""OCR pre-annotations for Label Studio, read with EasyOCR."""

__version__ = "0.1.0"
