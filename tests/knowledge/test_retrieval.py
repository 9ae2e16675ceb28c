"""Retrieval quality on a corpus no one here wrote: the topics of the Python language reference
that ship with CPython (``pydoc_data.topics``), one document per topic, ingested by the real
pipeline (parse, chunk, embed with the local all-MiniLM-L6-v2), searched through the API with
the questions of ``pydoc_questions`` (plain words; the answer in one known topic).

Some topics are the very same text under two names (``else`` and ``if``, say): such a text is one
document titled with all its names (the collection refuses the same content twice).

A hit is a result among the top 5 that belongs to the expected topic's document. Printed:
hit@1, hit@5 and MRR (over the top 5) for each mode; asserted: hybrid hit@5 ≥ 0.8.
"""

from __future__ import annotations

from pydoc_data.topics import topics

import pytest

from knowledge import services
from knowledge.models import Collection, Document
from tests.knowledge.pydoc_questions import QUESTIONS

pytestmark = pytest.mark.django_db
TITLE_SEPARATOR = " / "


@pytest.fixture
def reference(tenant) -> Collection:
    collection = services.collection_create(project=tenant.project, name="Python reference")
    names: dict[str, list[str]] = {}
    for key, text in sorted(topics.items()):
        names.setdefault(text, []).append(key)
    documents = [
        services.document_create(
            collection=collection,
            data=text.encode(),
            source=Document.Source.TEXT,
            title=TITLE_SEPARATOR.join(keys),
            content_type="text/plain",
        )
        for text, keys in names.items()
    ]
    for document in documents:
        assert services.document_parse(document.pk) == "parsed"
        assert services.document_embed(document.pk) == "ready"
    return collection


def measure(client, collection, mode: str) -> dict:
    first_hits, top5_hits, reciprocal, misses = 0, 0, 0.0, []
    for question, topic in QUESTIONS:
        response = client.post(
            f"/api/v1/collections/{collection.pk}/search", {"query": question, "mode": mode, "top_k": 5}, format="json"
        )
        assert response.status_code == 200, response.json()
        found = [r["document"]["title"].split(TITLE_SEPARATOR) for r in response.json()["results"]]
        ranks = [rank for rank, keys in enumerate(found, start=1) if topic in keys]
        if ranks:
            rank = ranks[0]
            top5_hits += 1
            first_hits += rank == 1
            reciprocal += 1 / rank
        else:
            misses.append(topic)
    n = len(QUESTIONS)
    return {"hit@1": first_hits / n, "hit@5": top5_hits / n, "mrr": reciprocal / n, "misses": misses}


def test_hybrid_search_finds_the_right_topic(tenant, reference):
    assert len(topics) >= 79 and len(QUESTIONS) >= 25
    assert {topic for _, topic in QUESTIONS} <= set(topics)
    client = tenant.client()

    figures = {mode: measure(client, reference, mode) for mode in ("vector", "keyword", "hybrid")}

    for mode, f in figures.items():
        print(  # the figures are the point of this test; see them with -s
            f"\n{mode:>7}: hit@1 {f['hit@1']:.3f}  hit@5 {f['hit@5']:.3f}  MRR {f['mrr']:.3f}  "
            f"(n={len(QUESTIONS)}; missed: {', '.join(f['misses']) or 'none'})"
        )
    assert figures["hybrid"]["hit@5"] >= 0.8
