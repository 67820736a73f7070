"""The `ocr-backend` command's subcommands, one module each (see `__main__.py`)."""
