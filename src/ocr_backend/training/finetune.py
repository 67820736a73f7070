"""Fine-tuning EasyOCR's recogniser on one project's export, from the stock weights.

The network is EasyOCR's own (generation 2: VGG features, two BiLSTMs, CTC),
trained as floats; the CPU serves it quantized to int8 as it serves the stock
one (ocr/easyocr_reader.py, load_recogniser). Lines are fed as EasyOCR's recogniser reads them:
grey, 64 pixels high, width to scale, padded on the right with the last column.
The batch-norm statistics stay the stock ones: a few hundred lines of one
project are too few to re-estimate them, and moving them hurt every other text.

The character error rate (CER: edits / characters of the truth) of the
held-out tasks' lines is measured before and after, both read by EasyOCR's
own `recognize` with the weights as they would be served; the model is
better only when its CER is lower. Lines with characters the alphabet lacks
cannot be learnt (CTC has no class for them): they are counted and named,
and left out of training and of the CER.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..ocr.easyocr_reader import load_recogniser
from .alphabet import RecogniserModel, missing_characters

log = logging.getLogger(__name__)

HEIGHT = 64  # EasyOCR's imgH for every stock recogniser
# EasyOCR's generation 2 recogniser (easyocr/model/vgg_model.py), as easyocr.Reader builds it.
GENERATION2 = {"input_channel": 1, "output_channel": 256, "hidden_size": 256}


def stock_state(weights: Path) -> dict[str, Any]:
    """The stock recogniser's weights as a float network's state (no `module.` prefix)."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    return {key.removeprefix("module."): value for key, value in state.items()}


@dataclass(frozen=True)
class Line:
    image: np.ndarray  # grey, uint8
    text: str


@dataclass
class Lines:
    """The lines of one side of an export that can be learnt, and those that cannot."""

    lines: list[Line]
    unlearnable: int = 0
    missing: Counter[str] = field(default_factory=Counter)


def load_lines(folder: Path, alphabet: str) -> Lines:
    """A recogniser folder of an export: labels.csv (`filename,words`, split at the first
    comma) and the crops it names."""
    found = Lines([])
    rows = (folder / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
    for row in rows:
        filename, _, text = row.partition(",")
        lacking = missing_characters(text, alphabet)
        if lacking:
            found.unlearnable += 1
            found.missing.update(lacking)
            continue
        grey = np.asarray(Image.open(folder / filename).convert("L"))
        found.lines.append(Line(grey, text))
    return found


def cer(read: Sequence[str], truth: Sequence[str]) -> float:
    """Character error rate: Levenshtein edits over the characters of the truth."""
    from rapidfuzz.distance import Levenshtein

    edits = sum(Levenshtein.distance(a, b) for a, b in zip(read, truth, strict=True))
    return edits / max(1, sum(len(t) for t in truth))


@dataclass
class Outcome:
    """What a fine-tuning did: the figures a person decides by, and the verdict."""

    cer_before: float
    cer_after: float
    train_lines: int
    validation_lines: int
    unlearnable_lines: int
    missing_characters: dict[str, int]
    epochs: int
    variants: int  # copies of each training line per pass: itself, then augmented ones
    seconds: float
    lines_per_second: float
    better: bool
    reason: str


Progress = Callable[[float, str], None]  # share done (0..1), what is happening
VARIANTS = 3  # copies of each training line whose features are kept: itself, then augmented


def fine_tune(
    export: Path,
    stock: Path,
    model: RecogniserModel,
    languages: Sequence[str],
    out: Path,
    *,
    epochs: int = 30,
    batch_size: int = 16,
    learning_rate: float = 5e-4,
    device: str = "cpu",
    max_seconds: float | None = None,
    seed: int = 0,
    variants: int = VARIANTS,
    progress: Progress | None = None,
) -> Outcome:
    """Train from `stock` on `export`'s training lines; write the weights to `out` (whole
    or not at all) whether better or not, and say which. Raises ValueError when the
    export has no line to learn from, or no held-out line to measure on.

    The convolutions up to the last one keep the stock weights: they see strokes and
    edges, which any text has. Their output for each line (and for `variants - 1`
    augmented copies of it) is computed once; the last convolution, the BiLSTMs and the output
    layer learn the project's glyphs from it. Measured on 2 busy CPU cores that is 7
    times less work per pass than training the whole network (bench/train.py).
    """
    import torch

    if model.generation != "generation2":
        raise ValueError(
            f"the {model.name} recogniser is EasyOCR's first generation; only second "
            "generation recognisers (the *_g2 models) are fine-tuned"
        )
    report = progress or (lambda share, what: None)
    train = load_lines(export / "recogniser" / "train", model.characters)
    held_out = load_lines(export / "recogniser" / "val", model.characters)
    if not train.lines:
        raise ValueError(f"{export} has no training line the {model.name} recogniser can write")
    if not held_out.lines:
        raise ValueError(f"{export} has no held-out line to measure the model on")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    report(0.0, "measuring the stock model")
    truth = [line.text for line in held_out.lines]
    before = cer(read_lines(stock, languages, held_out.lines, device), truth)

    network = _network(model, stock, device)
    network.eval()  # batch-norm statistics and the trunk stay the stock ones
    trunk = network.FeatureExtraction.ConvNet[:-2]
    for parameter in trunk.parameters():
        parameter.requires_grad_(False)
    report(0.02, "reading the lines' features")
    started = time.monotonic()
    with torch.no_grad():
        examples = [
            (
                trunk(_batch([_augmented(line.image, rng) if k else line.image]).to(device)),
                line.text,
            )
            for k in range(variants)
            for line in train.lines
        ]
        checks = [trunk(_batch([line.image]).to(device)) for line in held_out.lines]
    learning = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(learning, lr=learning_rate)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    index = {char: i + 1 for i, char in enumerate(model.characters)}
    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    best = _head_cer(network, checks, truth, model.characters)
    seen = 0
    done_epochs = 0
    for epoch in range(epochs):
        network.train()
        _freeze_batch_norm(network)
        order = [examples[i] for i in rng.permutation(len(examples))]
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            scores = _head(network, _stack([features for features, _ in batch]))
            out_seq = scores.log_softmax(2).permute(1, 0, 2)
            targets = torch.tensor([index[c] for _, text in batch for c in text], dtype=torch.long)
            lengths = torch.tensor([len(text) for _, text in batch], dtype=torch.long)
            steps = torch.full((len(batch),), out_seq.size(0), dtype=torch.long)
            loss = ctc(out_seq.cpu(), targets, steps, lengths)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(learning, 5.0)
            optimiser.step()
            seen += len(batch)
        done_epochs = epoch + 1
        now = _head_cer(network, checks, truth, model.characters)
        if now < best:
            best = now
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        log.info("epoch %d/%d: held-out CER %.3f (best %.3f)", done_epochs, epochs, now, best)
        report(0.05 + done_epochs / epochs * 0.9, f"epoch {done_epochs}/{epochs}: CER {now:.3f}")
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            break
    seconds = time.monotonic() - started
    save_weights(best_state, out)
    report(0.97, "measuring the fine-tuned model")
    after = cer(read_lines(out, languages, held_out.lines, device), truth)
    better = after < before
    reason = (
        f"held-out CER {before:.3f} -> {after:.3f}"
        if better
        else f"not better on the held-out tasks: CER {before:.3f} -> {after:.3f}"
    )
    missing = train.missing + held_out.missing
    report(1.0, reason)
    return Outcome(
        cer_before=before,
        cer_after=after,
        train_lines=len(train.lines),
        validation_lines=len(held_out.lines),
        unlearnable_lines=train.unlearnable + held_out.unlearnable,
        missing_characters=dict(missing.most_common()),
        epochs=done_epochs,
        variants=variants,
        seconds=seconds,
        lines_per_second=seen / max(seconds, 1e-9),
        better=better,
        reason=reason,
    )


def held_out_cer(
    weights: Path, export: Path, model: RecogniserModel, languages: Sequence[str], device: str
) -> float:
    """The CER of `weights` on the export's held-out lines, read as they would be served:
    what a new training must beat where a project model serves already."""
    held_out = load_lines(export / "recogniser" / "val", model.characters)
    truth = [line.text for line in held_out.lines]
    return cer(read_lines(weights, languages, held_out.lines, device), truth)


def read_lines(
    weights: Path, languages: Sequence[str], lines: Sequence[Line], device: str
) -> list[str]:
    """What EasyOCR reads in each line with these weights, as it is served: its own
    `get_text` (greedy decoding, the low-contrast second pass, characters outside the
    languages ignored) over the lines resized as `get_image_list` resizes a box."""
    from easyocr.recognition import get_text

    reader = recogniser_reader(weights, languages, device)
    resized = [_as_read(line.image) for line in lines]
    widest = max(HEIGHT, max(math.ceil(image.shape[1] / HEIGHT) * HEIGHT for image in resized))
    ignore = "".join(set(reader.character) - set(reader.lang_char))
    found = get_text(
        reader.character,
        HEIGHT,
        widest,
        reader.recognizer,
        reader.converter,
        [([[0, 0]] * 4, image) for image in resized],
        ignore,
        "greedy",
        5,
        16,
        0.1,
        0.5,
        0.003,
        0,
        device,
    )
    return [str(text).strip() for _, text, _ in found]


def recogniser_reader(weights: Path, languages: Sequence[str], device: str) -> Any:
    """An EasyOCR reader without a detector, reading with `weights`."""
    import easyocr

    from ..ocr.weights import bundled_model_dir

    stock_folder = bundled_model_dir()
    with tempfile.TemporaryDirectory(prefix="ocr-backend-train-") as scratch:
        # The stock file builds the reader (EasyOCR checks its checksum); ours replaces it.
        folder = stock_folder if stock_folder is not None else weights.parent
        reader = easyocr.Reader(
            list(languages),
            gpu=device,
            model_storage_directory=str(folder),
            user_network_directory=scratch,
            detector=False,
            download_enabled=False,
            verbose=False,
        )
    load_recogniser(reader, weights, languages)
    return reader


def save_weights(state: dict[str, Any], out: Path) -> None:
    """The stock file's layout (`module.` keys), written beside `out` and renamed onto it."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save({f"module.{key}": value.cpu() for key, value in state.items()}, temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _network(model: RecogniserModel, stock: Path, device: str) -> Any:
    from easyocr.model.vgg_model import Model

    network = Model(num_class=len(model.characters) + 1, **GENERATION2)
    network.load_state_dict(stock_state(stock))
    return network.to(device)


def _freeze_batch_norm(network: Any) -> None:
    import torch

    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def _as_read(grey: np.ndarray) -> np.ndarray:
    """The line 64 pixels high, as EasyOCR's get_image_list resizes a box (bilinear)."""
    width = max(1, int(HEIGHT * grey.shape[1] / grey.shape[0]))
    return cv2.resize(grey, (width, HEIGHT), interpolation=cv2.INTER_LINEAR)


def _batch(images: Sequence[np.ndarray]) -> Any:
    """EasyOCR's AlignCollate: 64 high, to scale, right-padded with the last column."""
    import torch
    from easyocr.recognition import AlignCollate

    resized = [_as_read(image) for image in images]
    widest = max(image.shape[1] for image in resized)
    collate = AlignCollate(imgH=HEIGHT, imgW=max(HEIGHT, widest), keep_ratio_with_pad=True)
    tensors: torch.Tensor = collate([Image.fromarray(image, "L") for image in resized])
    return tensors


def _stack(features: Sequence[Any]) -> Any:
    """Feature maps of several widths as one batch, each padded with its last column."""
    import torch

    widest = max(f.shape[3] for f in features)
    return torch.cat(
        [
            torch.cat([f, f[:, :, :, -1:].expand(-1, -1, -1, widest - f.shape[3])], dim=3)
            for f in features
        ]
    )


def _head(network: Any, features: Any) -> Any:
    """The network after its trunk: the last convolution, the BiLSTMs, the output layer."""
    visual = network.FeatureExtraction.ConvNet[-2:](features)
    visual = network.AdaptiveAvgPool(visual.permute(0, 3, 1, 2)).squeeze(3)
    return network.Prediction(network.SequenceModeling(visual).contiguous())


def _augmented(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The line as another photograph of it might show it: margins, blur, light."""
    top, bottom, left, right = (int(t) for t in rng.integers(-3, 4, size=4))
    image = cv2.copyMakeBorder(
        grey, max(0, -top), max(0, -bottom), max(0, -left), max(0, -right), cv2.BORDER_REPLICATE
    )
    height, width = image.shape[:2]
    image = image[max(0, top) : height - max(0, bottom), max(0, left) : width - max(0, right)]
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2))
    gain, offset = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
    image = np.clip(image.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    return image if image.shape[0] > 4 and image.shape[1] > 4 else grey


def _head_cer(network: Any, checks: Sequence[Any], truth: Sequence[str], characters: str) -> float:
    """The held-out CER of the float network, decoded greedily: to pick the best epoch."""
    import torch

    network.eval()
    read: list[str] = []
    with torch.no_grad():
        for features in checks:
            row = _head(network, features).argmax(2)[0].cpu().numpy()
            chars = [c for i, c in enumerate(row) if c != 0 and (i == 0 or c != row[i - 1])]
            read.append("".join(characters[c - 1] for c in chars))
    return cer(read, truth)
