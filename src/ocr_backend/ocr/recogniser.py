"""A project's fine-tuned recogniser, put into a built EasyOCR reader in place of the stock one.

A fine-tuned weights file has the stock file's layout (the same network,
`module.`-prefixed keys as torch.nn.DataParallel saved them), so EasyOCR's
own `get_recognizer` loads it as it loads the stock weights: on the CPU
dynamically quantized to int8, as the stock recogniser is served, on a GPU
as floats. The detector and everything else of the reader stay as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import easyocr

# EasyOCR's generation 2 recogniser (easyocr/model/vgg_model.py), as easyocr.Reader builds it.
GENERATION2 = {"input_channel": 1, "output_channel": 256, "hidden_size": 256}


def use_recogniser(reader: easyocr.Reader, weights: Path) -> None:
    """Read with `weights` from now on. Raises ValueError when they do not fit the reader's
    recogniser (another language's alphabet, another network)."""
    from easyocr.recognition import get_recognizer

    try:
        model, converter = get_recognizer(
            "generation2",
            GENERATION2,
            reader.character,
            {},
            {},
            str(weights),
            device=reader.device,
            quantize=bool(reader.quantize),
        )
    except RuntimeError as exc:  # load_state_dict: missing keys or other shapes
        raise ValueError(
            f"{weights} is not a fine-tuned recogniser for this reader's alphabet "
            f"({len(reader.character)} characters): {str(exc).splitlines()[0]}"
        ) from None
    reader.recognizer, reader.converter = model, converter


def stock_state(weights: Path) -> dict[str, Any]:
    """The stock recogniser's weights as a float network's state (no `module.` prefix)."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    return {key.removeprefix("module."): value for key, value in state.items()}
