"""Split parsed sections into chunks sized for an embedding model (pure Python, no database).

Chunks follow the document's structure: a chunk never spans two headings (or two PDF pages);
inside a heading, whole paragraphs are packed together up to ``size`` tokens; a paragraph too long
for one chunk is cut at sentence ends, then at line breaks, then between words, and only a single
"word" longer than a chunk (a URL, minified data) is cut between tokens. Each chunk after the
first of a heading starts with the last ``overlap`` tokens of the chunk before it, so a passage cut
at a boundary is still found whole in one of the two.

Chunks are slices of the section text, never rewritten: the heading goes to ``metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from knowledge.parsing import Section

# Word-piece tokenizers of common embedding models (BERT/MiniLM WordPiece, BPE) give roughly one
# token per word and one per punctuation mark; long or rare words give a few more. Tokens never
# contain whitespace, so the count of text joined at whitespace is the sum of the counts.
_TOKEN = re.compile(r"\w+|[^\w\s]")
_PARAGRAPH_GAP = re.compile(r"\n\s*\n")  # a blank line, even one holding spaces
_SENTENCE_GAP = re.compile("[.!?\u2026][\"'\u201d\u2019)\\]]*(\\s+)")  # closing quotes stay with the sentence
_LINE_GAP = re.compile(r"\n\s*")


def count_tokens(text: str) -> int:
    """A fast estimate of the model tokens in ``text``: words plus punctuation marks."""
    return len(_TOKEN.findall(text))


@dataclass
class Chunk:
    text: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Span:
    start: int
    end: int
    tokens: int


def chunk_sections(sections: Iterable[Section], *, size: int, overlap: int) -> list[Chunk]:
    """Chunks of at most ``size`` tokens (by :func:`count_tokens`), in document order.

    Consecutive sections with the same heading and page are one run of text; a new heading or
    page starts a new chunk. The overlap is shortened when the next paragraph would not fit
    beside it, so whole paragraphs stay whole. Raises ``ValueError`` unless
    ``0 <= overlap < size``.
    """
    if size <= 0:
        raise ValueError("size must be a positive number of tokens")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    chunks: list[Chunk] = []
    for (heading, page), run in groupby(sections, key=lambda section: (section.heading, section.page)):
        text = "\n\n".join(section.text for section in run)
        metadata: dict[str, Any] = {"heading": heading} if heading else {}
        if page is not None:
            metadata["page"] = page
        chunks.extend(
            Chunk(text=text[span.start : span.end], token_count=span.tokens, metadata=dict(metadata))
            for span in _pack(text, _units(text, size, overlap), size, overlap)
        )
    return chunks


def _units(text: str, size: int, overlap: int) -> Iterator[_Span]:
    """Paragraphs that fit a chunk, and the pieces of those that do not.

    Pieces are cut to ``size - overlap`` tokens so that the overlap fits beside each of them.
    """
    for paragraph in _split(text, 0, len(text), _PARAGRAPH_GAP):
        if paragraph.tokens <= size:
            yield paragraph
        else:
            yield from _pieces(text, paragraph, size - overlap, (_SENTENCE_GAP, _LINE_GAP))


def _pieces(text: str, span: _Span, limit: int, gaps: tuple[re.Pattern[str], ...]) -> Iterator[_Span]:
    if not gaps:
        yield from _words(text, span, limit)
        return
    for piece in _split(text, span.start, span.end, gaps[0]):
        if piece.tokens <= limit:
            yield piece
        else:
            yield from _pieces(text, piece, limit, gaps[1:])


def _split(text: str, start: int, end: int, gap: re.Pattern[str]) -> Iterator[_Span]:
    """The non-blank stretches of ``text[start:end]`` between matches of ``gap`` (its group 1, if
    it has one, is the part that separates; the rest stays with the piece before)."""
    position = start
    for match in gap.finditer(text, start, end):
        cut_start, cut_end = match.span(1) if gap.groups else match.span()
        yield from _trimmed(text, position, cut_start)
        position = cut_end
    yield from _trimmed(text, position, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[_Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield _Span(start, end, count_tokens(text[start:end]))


def _words(text: str, span: _Span, limit: int) -> Iterator[_Span]:
    """Pieces of at most ``limit`` tokens, cut at the last space that allows it, or between tokens
    when a single word is longer than ``limit``."""
    tokens = [match.span() for match in _TOKEN.finditer(text, span.start, span.end)]
    first = 0
    while first < len(tokens):
        stop = min(first + limit, len(tokens))
        if stop < len(tokens):
            # the latest token preceded by whitespace, i.e. the start of a word
            stop = next((i for i in range(stop, first, -1) if tokens[i][0] > tokens[i - 1][1]), stop)
        yield _Span(tokens[first][0], tokens[stop - 1][1], stop - first)
        first = stop


def _pack(text: str, units: Iterable[_Span], size: int, overlap: int) -> Iterator[_Span]:
    """Greedily fill chunks with consecutive units; each new chunk starts with the tail of the last."""
    current: _Span | None = None
    for unit in units:
        if current is None:
            current = _Span(unit.start, unit.end, unit.tokens)
        elif current.tokens + unit.tokens <= size:
            current.end, current.tokens = unit.end, current.tokens + unit.tokens
        else:
            yield current
            carried = min(overlap, size - unit.tokens, current.tokens)
            start = _tail_start(text, current, carried) if carried else unit.start
            current = _Span(start, unit.end, carried + unit.tokens)
    if current is not None:
        yield current


def _tail_start(text: str, span: _Span, tokens: int) -> int:
    """Where the last ``tokens`` tokens of ``span`` begin."""
    starts = [match.start() for match in _TOKEN.finditer(text, span.start, span.end)]
    return starts[-tokens]
