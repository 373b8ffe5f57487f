"""A classified batch joined back onto the uploaded file, and the counts its chart draws."""

from __future__ import annotations

import csv
import io
import json

from vireo.apps.classify import ClassifyOutput
from vireo.ui.labelled_table import csv_columns, jsonl_fields, label_counts, labelled_csv, labelled_jsonl

UPLOAD = 'id,review,stars\n7,"Great, works well",5\n8,Broke in a day,1\n'
RESULTS = ClassifyOutput.model_validate(  # the app's own output model: the page reads what the app returns
    {
        "results": [
            {
                "index": 0,
                "text": "Great, works well",
                "label": "praise",
                "labels": ["praise"],
                "probability": 0.9,
                "scores": [],
            },
            {
                "index": 1,
                "text": "Broke in a day",
                "label": "bug report",
                "labels": ["bug report", "billing"],
                "probability": 0.6,
                "scores": [],
            },
        ],
        "counts": {"praise": 1, "bug report": 1, "billing": 1, "question": 0},
        "csv": "index,label\n",
        "method": "calibrated",
    }
).model_dump()["results"]


def test_the_labelled_csv_keeps_every_column_and_row_of_the_upload():
    rows = list(csv.DictReader(io.StringIO(labelled_csv(UPLOAD, RESULTS))))
    assert [r["id"] for r in rows] == ["7", "8"] and rows[0]["review"] == "Great, works well"
    assert (rows[0]["label"], rows[0]["probability"]) == ("praise", "0.9")
    assert rows[1]["labels"] == "bug report;billing"
    assert csv_columns(UPLOAD) == ["id", "review", "stars"]


def test_labelled_json_lines_add_the_same_fields():
    upload = '{"text": "Great", "id": 7}\n\n"Broke in a day"\n'
    lines = [json.loads(line) for line in labelled_jsonl(upload, RESULTS).splitlines()]
    assert lines[0] == {"text": "Great", "id": 7, "label": "praise", "labels": "praise", "probability": 0.9}
    assert lines[1]["text"] == "Broke in a day" and lines[1]["label"] == "bug report"
    assert jsonl_fields(upload) == ["text", "id"]


def test_counts_follow_the_label_set_and_include_labels_no_text_got():
    counts = label_counts(RESULTS, ["praise", "bug report", "billing", "question"])
    assert counts == [
        {"label": "praise", "texts": 1},
        {"label": "bug report", "texts": 1},
        {"label": "billing", "texts": 1},
        {"label": "question", "texts": 0},
    ]
