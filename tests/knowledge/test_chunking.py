"""The chunker (``knowledge.chunking``): sizes, overlap, structure (headings, paragraphs,
sentences) and that no text is ever lost."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from knowledge.chunking import Chunk, chunk_sections, count_tokens
from knowledge.parsing import Section

TOKEN = re.compile(r"\w+|[^\w\s]")


def sentence(first: int, length: int) -> str:
    """``length`` distinct words ``w<first> ...`` and a full stop, so every word can be traced."""
    return " ".join(f"w{index}" for index in range(first, first + length)) + "."


def prose(paragraphs: int, sentences: int, words: int, start: int = 0) -> str:
    out = []
    for _ in range(paragraphs):
        out.append(" ".join(sentence(start + k * words, words) for k in range(sentences)))
        start += sentences * words
    return "\n\n".join(out)


def without_overlap(chunks: list[Chunk], overlap: int) -> list[str]:
    """The tokens of the chunks in order, dropping each chunk's copy of the previous chunk's tail
    (the longest match, at most ``overlap`` tokens, within the same heading and page)."""
    tokens: list[str] = []
    previous: list[str] = []
    previous_metadata = None
    for chunk in chunks:
        current = TOKEN.findall(chunk.text)
        carried = 0
        if chunk.metadata == previous_metadata:
            carried = max(
                (k for k in range(min(overlap, len(previous)) + 1) if k == 0 or previous[-k:] == current[:k]),
                default=0,
            )
        tokens.extend(current[carried:])
        previous, previous_metadata = current, chunk.metadata
    return tokens


def test_count_tokens_counts_words_and_punctuation_marks():
    assert count_tokens("") == 0
    assert count_tokens("   \n ") == 0
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("e-mail: ada@example.com") == 9
    assert count_tokens("Grüße aus Köln") == 3


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-5, 0), (10, -1), (10, 10), (10, 11)])
def test_size_and_overlap_are_validated(size, overlap):
    with pytest.raises(ValueError):
        chunk_sections([Section("text")], size=size, overlap=overlap)


def test_no_sections_give_no_chunks():
    assert chunk_sections([], size=10, overlap=2) == []


@pytest.mark.parametrize(("size", "overlap"), [(8, 0), (16, 4), (50, 10), (200, 50), (1000, 0)])
def test_every_chunk_fits_the_size_and_no_word_is_lost(size, overlap):
    text = prose(paragraphs=12, sentences=5, words=9)

    chunks = chunk_sections([Section(text)], size=size, overlap=overlap)

    assert all(chunk.text.strip() and count_tokens(chunk.text) == chunk.token_count <= size for chunk in chunks)
    assert without_overlap(chunks, overlap) == TOKEN.findall(text)


def test_each_chunk_starts_with_the_last_overlap_tokens_of_the_one_before():
    text = prose(paragraphs=1, sentences=30, words=7)

    chunks = chunk_sections([Section(text)], size=40, overlap=8)

    assert len(chunks) > 3
    for before, after in pairwise(chunks):
        assert TOKEN.findall(after.text)[:8] == TOKEN.findall(before.text)[-8:]


def test_overlap_shrinks_rather_than_split_a_paragraph_that_fits():
    first, second = sentence(0, 20), sentence(100, 27)  # 21 and 28 tokens

    chunks = chunk_sections([Section(f"{first}\n\n{second}")], size=30, overlap=5)

    assert [chunk.text for chunk in chunks] == [first, "w19.\n\n" + second]


def test_a_new_heading_or_page_starts_a_new_chunk_and_is_kept_in_metadata():
    sections = [
        Section("Intro words."),
        Section("Linux steps.", heading="Install > Linux"),
        Section("Windows steps.", heading="Install > Windows"),
        Section("Page one.", page=1),
        Section("Page two.", page=2),
    ]

    chunks = chunk_sections(sections, size=100, overlap=10)

    assert [(chunk.text, chunk.metadata) for chunk in chunks] == [
        ("Intro words.", {}),
        ("Linux steps.", {"heading": "Install > Linux"}),
        ("Windows steps.", {"heading": "Install > Windows"}),
        ("Page one.", {"page": 1}),
        ("Page two.", {"page": 2}),
    ]


def test_no_chunk_mixes_text_of_two_headings():
    sections = [Section(prose(3, 4, 10, start=1000 * index), heading=f"H{index}") for index in range(4)]

    chunks = chunk_sections(sections, size=30, overlap=6)

    for chunk in chunks:
        numbers = {int(word[1:]) // 1000 for word in re.findall(r"w\d+", chunk.text)}
        assert numbers == {int(chunk.metadata["heading"][1:])}
    assert without_overlap(chunks, 6) == TOKEN.findall(" ".join(section.text for section in sections))


def test_consecutive_sections_under_the_same_heading_are_packed_together():
    sections = [Section("Row one.", heading="Data"), Section("Row two.", heading="Data")]

    assert [chunk.text for chunk in chunk_sections(sections, size=50, overlap=0)] == ["Row one.\n\nRow two."]


def test_small_paragraphs_are_packed_whole_up_to_the_size():
    paragraphs = [sentence(index * 100, 9) for index in range(10)]  # 10 tokens each

    chunks = chunk_sections([Section("\n\n".join(paragraphs))], size=35, overlap=0)

    assert [chunk.text.split("\n\n") for chunk in chunks] == [
        paragraphs[0:3],
        paragraphs[3:6],
        paragraphs[6:9],
        paragraphs[9:10],
    ]
    assert [chunk.token_count for chunk in chunks] == [30, 30, 30, 10]


def test_a_long_paragraph_is_cut_at_sentence_ends():
    text = prose(paragraphs=1, sentences=12, words=9)

    chunks = chunk_sections([Section(text)], size=25, overlap=0)

    assert len(chunks) == 6
    assert all(chunk.text.endswith(".") and chunk.token_count == 20 for chunk in chunks)


def test_text_without_sentence_ends_is_cut_at_line_breaks():
    lines = [" ".join(f"cell{row}x{col}" for col in range(6)) for row in range(10)]

    chunks = chunk_sections([Section("\n".join(lines))], size=15, overlap=0)

    assert [chunk.text.split("\n") for chunk in chunks] == [lines[i : i + 2] for i in range(0, 10, 2)]


def test_a_single_long_sentence_is_cut_between_words():
    text = sentence(0, 100)

    chunks = chunk_sections([Section(text)], size=30, overlap=5)

    words = set(text.rstrip(".").split())
    assert all(set(chunk.text.rstrip(".").split()) <= words for chunk in chunks)
    assert all(chunk.token_count <= 30 for chunk in chunks)
    assert without_overlap(chunks, 5) == TOKEN.findall(text)


def test_a_word_longer_than_a_chunk_is_cut_between_tokens():
    text = "start " + ",".join(f"v{index}" for index in range(60)) + " end"

    chunks = chunk_sections([Section(text)], size=20, overlap=0)

    assert all(chunk.token_count <= 20 for chunk in chunks)
    assert without_overlap(chunks, 0) == TOKEN.findall(text)
    assert chunks[0].text == "start"


def test_chunk_text_is_a_slice_of_the_section_with_nothing_prefixed():
    section = Section("Alpha beta.\n\n  Gamma   delta.  ", heading="Greek")

    (chunk,) = chunk_sections([section], size=50, overlap=5)

    assert chunk.text == "Alpha beta.\n\n  Gamma   delta."
    assert chunk.metadata == {"heading": "Greek"}


def test_chunking_is_deterministic():
    sections = [Section(prose(5, 5, 11), heading="A"), Section(prose(4, 3, 17), page=2)]

    assert chunk_sections(sections, size=40, overlap=7) == chunk_sections(sections, size=40, overlap=7)


def test_a_megabyte_of_text_is_chunked_completely():
    text = prose(paragraphs=3000, sentences=6, words=9)
    assert len(text) > 1_000_000

    chunks = chunk_sections([Section(text, heading="Big")], size=256, overlap=32)

    tokens = TOKEN.findall(text)
    assert without_overlap(chunks, 32) == tokens
    assert all(chunk.token_count <= 256 for chunk in chunks)
    # each chunk packs 3 whole paragraphs of 60 tokens (180) or 4 (240), plus what it carries
    assert len(tokens) / 256 < len(chunks) < len(tokens) / 150
