"""What a label config asks an OCR prediction to fill, and what /setup tells a user to fix."""

from __future__ import annotations

import pytest

from ocr_backend.errors import LabelConfigError
from ocr_backend.label_studio.config import Geometry, OcrTargets, parse_label_config
from tests.support.label_studio import OCR_TEMPLATE


def test_the_stock_ocr_template():
    assert parse_label_config(OCR_TEMPLATE) == OcrTargets(
        image="image",
        image_key="ocr",
        textarea="transcription",
        rectangle=Geometry("bbox", "rectangle"),
        polygon=Geometry("poly", "polygon"),
        labels="label",
        label="Text",
    )


def test_rectangle_labels_and_polygon_labels_carry_the_label_themselves():
    config = """<View><Image name="page" value="$img"/>
      <RectangleLabels name="boxes" toName="page"><Label value="Title"/><Label value="Text"/></RectangleLabels>
      <PolygonLabels name="shapes" toName="page"><Label value="Handwriting"/></PolygonLabels>
      <TextArea name="words" toName="page" perRegion="true"/></View>"""
    targets = parse_label_config(config)
    assert targets.rectangle == Geometry("boxes", "rectanglelabels", "Text")
    assert targets.polygon == Geometry("shapes", "polygonlabels", "Handwriting")
    assert targets.labels is None and targets.image_key == "img"


def test_a_label_mapping_picks_the_label():
    targets = parse_label_config(OCR_TEMPLATE, {"Text": "Handwriting"})
    assert targets.label == "Handwriting"


def test_without_a_text_label_the_first_label_is_used():
    config = OCR_TEMPLATE.replace('<Label value="Text" background="green"/>', "")
    assert parse_label_config(config).label == "Handwriting"


def test_the_textarea_chooses_the_image_among_several():
    config = """<View><Image name="logo" value="$logo"/><Image name="scan" value="$scan"/>
      <Rectangle name="r" toName="scan"/><TextArea name="t" toName="scan" perRegion="true"/></View>"""
    targets = parse_label_config(config)
    assert (targets.image, targets.image_key) == ("scan", "scan")


@pytest.mark.parametrize(
    ("config", "mappings", "advice"),
    [
        ("<View><Text name='t' value='$text'/></View>", None,
         'no <Image> tag. Add one, e.g. <Image name="image" value="$ocr"/>'),
        (OCR_TEMPLATE.replace('perRegion="true"', ""), None,
         'no per-region <TextArea> for the image, so the text read cannot be stored. Add <TextArea name="transcription" toName="image" perRegion="true"'),
        (OCR_TEMPLATE.replace('<Rectangle name="bbox" toName="image" strokeWidth="3"/>', "")
         .replace('<Polygon name="poly" toName="image" strokeWidth="3"/>', ""), None,
         'no <Rectangle> or <Polygon> for image "image". Add <Rectangle name="bbox" toName="image"/>'),
        (OCR_TEMPLATE, {"Text": "Printed"},
         'LABEL_MAPPINGS_FILE maps "Text" to "Printed", which is not a label in this config (it has: Handwriting, Text). Add <Label value="Printed"/>'),
        ("<View><Image", None, "The label config is not valid XML"),
    ],
)  # fmt: skip
def test_configs_that_cannot_be_served_say_what_to_add(config, mappings, advice):
    with pytest.raises(LabelConfigError) as caught:
        parse_label_config(config, mappings)
    assert advice in str(caught.value)
    with pytest.raises(LabelConfigError) as again:  # remembered, and said the same way
        parse_label_config(config, mappings)
    assert str(again.value) == str(caught.value)


def test_a_config_is_parsed_once_per_label_mapping():
    first = parse_label_config(OCR_TEMPLATE)
    assert parse_label_config(OCR_TEMPLATE) is first  # every /predict of a project sends it
    mapped = parse_label_config(OCR_TEMPLATE, {"Text": "Handwriting"})
    assert mapped.rectangle == first.rectangle and mapped.label == "Handwriting"
    assert parse_label_config(OCR_TEMPLATE).label == "Text"  # the mapping is part of the key


def test_an_entity_bomb_is_refused_without_expanding_it():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<View><Image name="image" value="$ocr"/><Text name="t" value="&lol3;"/></View>'
    )
    with pytest.raises(LabelConfigError, match="declares XML entities or a DTD"):
        parse_label_config(bomb)
