"""Read a Label Studio label config: which tags an OCR prediction must fill.

Parsed with defusedxml, DTDs forbidden: the config comes from the network; an
entity bomb must not take the service down, and an ATTLIST default must not
change what is read. The callers cap its size and parse it off the event loop
(a 13 MB config took seconds). A project sends the same config with every
/predict, and the job runner needs it for every task it reads: each config
is parsed once and kept, by its digest.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml.ElementTree import fromstring

from ..errors import LabelConfigError

BACKEND_LABEL = "Text"  # the one class EasyOCR finds; LABEL_MAPPINGS_FILE renames it

# Label Studio's stock template, Computer Vision > Optical Character Recognition, as
# Label Studio 1.23.2 ships it: what most projects that connect this service use.
STOCK_OCR_CONFIG = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image">
    <Label value="Text" background="green"/>
    <Label value="Handwriting" background="blue"/>
  </Labels>
  <Rectangle name="bbox" toName="image" strokeWidth="3"/>
  <Polygon name="poly" toName="image" strokeWidth="3"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true"
            required="true" maxSubmissions="1" rows="5" placeholder="Recognized Text"
            displayMode="region-list"/>
</View>"""

EXAMPLE_TEXTAREA = (
    '<TextArea name="transcription" toName="{image}" perRegion="true" '
    'editable="true" displayMode="region-list"/>'
)


@dataclass(frozen=True, slots=True)
class Geometry:
    """A Rectangle/Polygon-like tag: its name, result type and, for *Labels tags, the label."""

    name: str
    type: str  # rectangle, rectanglelabels, polygon or polygonlabels
    label: str | None = None


@dataclass(frozen=True, slots=True)
class OcrTargets:
    """The tags of one Image that an OCR region fills."""

    image: str  # the Image tag's name: every result's to_name
    image_key: str  # the task data key its $variable reads
    textarea: str
    rectangle: Geometry | None
    polygon: Geometry | None
    labels: str | None = None  # a separate Labels tag, when geometry carries no label
    label: str | None = None
    # <Image valueList="$pages">: the task data key holds a list of page images, shown as
    # pages of one task; every result item then names its page with `item_index`.
    multi_page: bool = False


def config_digest(config: str) -> str:
    """The config's SHA-256 (hex): the job queue stores each config once under it."""
    return hashlib.sha256(config.encode("utf-8", "surrogatepass")).hexdigest()


# One per project in use, and a few older versions: what a parse found is small, the
# config itself (up to MAX_LABEL_CONFIG_BYTES) is not kept.
PARSED_KEPT = 64
_parsed: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], OcrTargets | str] = OrderedDict()
_parsed_lock = threading.Lock()  # the routes parse in worker threads, the job runner on the loop


def parse_label_config(config: str, label_mappings: Mapping[str, str] | None = None) -> OcrTargets:
    """Find the Image, geometry, label and per-region TextArea tags, or say what is missing.

    Parsed once per config and LABEL_MAPPINGS_FILE; a config that cannot be
    served is remembered too, and raises the same LabelConfigError again.
    """
    key = (config_digest(config), tuple(sorted((label_mappings or {}).items())))
    with _parsed_lock:
        found = _parsed.get(key)
        if found is not None:
            _parsed.move_to_end(key)
    if found is None:
        try:
            found = _parse(config, label_mappings)
        except LabelConfigError as exc:
            found = str(exc)
        with _parsed_lock:
            _parsed[key] = found
            while len(_parsed) > PARSED_KEPT:
                _parsed.popitem(last=False)
    if isinstance(found, str):
        raise LabelConfigError(found)
    return found


def _parse(config: str, label_mappings: Mapping[str, str] | None) -> OcrTargets:
    root = _parse_xml(config)
    tags = [el for el in root.iter() if isinstance(el.tag, str)]
    images = {el.get("name"): el for el in tags if _kind(el) == "image" and el.get("name")}
    if not images:
        raise LabelConfigError(
            "The label config has no <Image> tag. Add one, e.g. "
            '<Image name="image" value="$ocr"/>, or <Image name="image" valueList="$pages"/> '
            "for documents of several pages."
        )
    textareas = [
        el
        for el in tags
        if _kind(el) == "textarea"
        and el.get("perRegion", "").lower() == "true"
        and set(_targets(el)) & set(images)
    ]
    if not textareas:
        first = next(iter(images))
        raise LabelConfigError(
            "The label config has no per-region <TextArea> for the image, so the text read "
            f"cannot be stored. Add {EXAMPLE_TEXTAREA.format(image=first)}."
        )
    textarea = textareas[0]
    image_name = next(name for name in _targets(textarea) if name in images)
    value_list = images[image_name].get("valueList")
    value = value_list if value_list is not None else images[image_name].get("value", "")
    if not value.startswith("$") or len(value) < 2:
        attribute, example = (
            ("valueList", "$pages") if value_list is not None else ("value", "$ocr")
        )
        raise LabelConfigError(
            f'The <Image name="{image_name}"> tag needs {attribute}="$<task data key>", '
            f'e.g. {attribute}="{example}".'
        )

    _check_served(root, images[image_name], image_name, value)

    bound = [el for el in tags if image_name in _targets(el)]
    mappings = dict(label_mappings or {})
    wanted = mappings.get(BACKEND_LABEL)

    def first_of(*kinds: str) -> Element | None:
        return next((el for el in bound if _kind(el) in kinds), None)

    rect_el = first_of("rectanglelabels", "rectangle")
    poly_el = first_of("polygonlabels", "polygon")
    if rect_el is None and poly_el is None:
        raise LabelConfigError(
            f'The label config has no <Rectangle> or <Polygon> for image "{image_name}". Add '
            f'<Rectangle name="bbox" toName="{image_name}"/> or '
            f'<Polygon name="poly" toName="{image_name}"/>.'
        )
    labels_el = first_of("labels")
    label_sets = [el for el in (rect_el, poly_el, labels_el) if el is not None and _choices(el)]
    if wanted is not None and not any(wanted in _choices(el) for el in label_sets):
        known = sorted({c for el in label_sets for c in _choices(el)})
        raise LabelConfigError(
            f'LABEL_MAPPINGS_FILE maps "{BACKEND_LABEL}" to "{wanted}", which is not a label in '
            f"this config (it has: {', '.join(known) or 'no labels'}). Add "
            f'<Label value="{wanted}"/> to the config or change the mapping.'
        )

    def geometry(el: Element | None) -> Geometry | None:
        if el is None:
            return None
        kind = _kind(el)
        label = _pick_label(_choices(el), wanted) if kind.endswith("labels") else None
        return Geometry(name=el.get("name", kind), type=kind, label=label)

    return OcrTargets(
        image=image_name,
        image_key=value[1:],
        textarea=textarea.get("name", "transcription"),
        rectangle=geometry(rect_el),
        polygon=geometry(poly_el),
        labels=labels_el.get("name") if labels_el is not None else None,
        label=_pick_label(_choices(labels_el), wanted) if labels_el is not None else None,
        multi_page=value_list is not None,
    )


# A task data key as Label Studio names one: `$ocr`, `$image_url`, `$page-1`. Anything
# else (`$document[{{idx}}].page`, a Repeater's) is a path into nested data that the
# predictor, which reads `task.data[key]`, would not find: every task would fail.
DATA_KEY = re.compile(r"[\w.-]+")
SERVED = (
    'This backend reads <Image value="$ocr"/> (one image URL per task) or '
    '<Image valueList="$pages"/> (a list of page image URLs, one task per document).'
)


def _check_served(root: Element, image: Element, name: str, value: str) -> None:
    """Refuse an Image that /predict could not read: in a Repeater, or a nested data path."""
    in_repeater = any(
        image in repeater.iter() for repeater in root.iter() if _kind(repeater) == "repeater"
    )
    if in_repeater:
        raise LabelConfigError(
            f'The <Image name="{name}"> tag is inside a <Repeater> (it reads "{value}"), '
            f"which this backend does not serve. {SERVED} For a document of several pages, "
            'put the page URLs in a list, e.g. "pages": ["https://.../1.png", ...], and use '
            '<Image name="image" valueList="$pages"/> without the Repeater.'
        )
    if not DATA_KEY.fullmatch(value[1:]):
        raise LabelConfigError(
            f'The <Image name="{name}"> tag reads "{value}", a path into nested task data, '
            f"which this backend does not serve. {SERVED}"
        )


def _parse_xml(config: str) -> Element:
    try:
        return fromstring(config, forbid_dtd=True)
    except UnicodeEncodeError:
        raise LabelConfigError(
            "The label config is not valid XML: it holds characters that are not Unicode "
            "text (lone surrogates such as \\ud800)."
        ) from None
    except defusedxml.DefusedXmlException:
        raise LabelConfigError(
            "The label config declares XML entities or a DTD, which are refused. "
            "Remove the <!DOCTYPE> and <!ENTITY> declarations."
        ) from None
    except ParseError as exc:
        raise LabelConfigError(f"The label config is not valid XML: {exc}.") from None


def _kind(el: Element) -> str:
    return str(el.tag).lower()


def _targets(el: Element) -> list[str]:
    return [name.strip() for name in el.get("toName", "").split(",") if name.strip()]


def _choices(el: Element | None) -> list[str]:
    if el is None:
        return []
    return [c.get("value", "") for c in el if isinstance(c.tag, str) and _kind(c) == "label"]


def _pick_label(choices: list[str], wanted: str | None) -> str | None:
    """The mapped label if this tag has it, else `Text`, else the first label."""
    for candidate in (wanted, BACKEND_LABEL):
        if candidate in choices:
            return candidate
    return choices[0] if choices else None
