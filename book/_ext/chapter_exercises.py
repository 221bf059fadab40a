"""Number exercises per chapter: "Exercise 10.2" is the second exercise of chapter 10.

sphinx-exercise numbers exercises with Sphinx's figure numbering, which counts across the
whole book (chapter 01's first exercise would be "Exercise 3"). After Sphinx has assigned
those numbers, this extension renumbers each page's exercises from 1, prefixed with the
chapter number taken from the notebook's name (``notebooks/10_attnvgg_melanoma`` → 10).
"""

from __future__ import annotations

import re


def _chapter(docname: str):
    match = re.match(r"(?:.*/)?(\d+)_", docname)
    return (int(match.group(1)),) if match else ()


def renumber(app, env) -> list[str]:
    for docname, numbers in env.toc_fignumbers.items():
        exercises = numbers.get("exercise")
        if not exercises:
            continue
        in_order = sorted(exercises, key=lambda node_id: exercises[node_id])
        numbers["exercise"] = {
            node_id: (*_chapter(docname), k)
            for k, node_id in enumerate(in_order, start=1)
        }
    return []


def setup(app):
    app.connect(
        "env-get-updated", renumber, priority=900
    )  # after Sphinx assigns the book-wide numbers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
