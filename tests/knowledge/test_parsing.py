"""Document type detection and parsing (``knowledge.parsing``): each format end to end from a real
file built in memory (``tests/knowledge/documents.py``), and every way a bad upload is refused."""

from __future__ import annotations

import io
import json

import pytest
from pypdf import PdfReader, PdfWriter

from knowledge.parsing import (
    CSV,
    DOCX,
    HTML,
    JSON,
    MARKDOWN,
    PDF,
    PLAIN,
    SUPPORTED_TYPES,
    ParseError,
    Section,
    detect_type,
    parse,
)
from tests.knowledge import documents

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


def parse_error(data: bytes, mime: str, **kwargs) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse(data, mime, **kwargs)
    return caught.value


def detect_error(filename: str, declared: str | None, head: bytes) -> ParseError:
    with pytest.raises(ParseError) as caught:
        detect_type(filename, declared, head)
    return caught.value


# --- detect_type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "declared", "head", "expected"),
    [
        ("notes.md", None, b"# Title", MARKDOWN),
        ("REPORT.PDF", "application/octet-stream", b"%PDF-1.7\n", PDF),
        ("manual.docx", "", b"PK\x03\x04rest", DOCX),
        ("page.htm", None, b"<p>hi</p>", HTML),
        ("rows.csv", "text/plain", b"a,b\n1,2", CSV),
        ("data.json", "text/plain; charset=utf-8", b"{}", JSON),
        ("upload", "application/json", b'{"a": 1}', JSON),
        ("page", "text/html; charset=UTF-8", b"<html>", HTML),
        ("notes", "text/x-markdown", b"# hi", MARKDOWN),
        ("README", None, b"plain words", PLAIN),
        ("README", None, b"\xef\xbb\xbfwith a BOM", PLAIN),
        ("scan", None, b"%PDF-1.4\n", PDF),
        ("build.log", None, b"ok", PLAIN),
        ("notes.rst", "text/plain", b"Title\n=====", PLAIN),
        ("notes.rst", None, b"Title\n=====", PLAIN),
        ("Release notes v1.2", None, b"Fixed bugs.", PLAIN),
        ("scan.bin", None, b"%PDF-1.4\n", PDF),
        ("cut.txt", None, "caf\u00e9".encode()[:-1], PLAIN),
        ("windows.txt", None, "hello".encode("utf-16"), PLAIN),
        ("empty.txt", None, b"", PLAIN),
    ],
)
def test_detect_type_uses_declared_type_then_extension_then_content(filename, declared, head, expected):
    assert detect_type(filename, declared, head) == expected


@pytest.mark.parametrize(
    ("filename", "declared", "head"),
    [
        ("report.pdf", None, b"just some text"),
        ("report.pdf", "application/pdf", b"just some text"),
        ("report", "application/pdf", b"PK\x03\x04"),
        ("manual.docx", None, b"%PDF-1.4"),
        ("manual.docx", DOCX, b"plain text, not a zip"),
        ("notes.txt", None, bytes(range(256))),
        ("notes.txt", "text/plain", PNG),
        ("notes.txt", None, "caf\u00e9 cr\u00e8me".encode("latin-1")),
        ("data.json", None, b"%PDF-1.4 binary"),
        ("rows.csv", None, b"PK\x03\x04\x14\x00"),
    ],
)
def test_detect_type_refuses_content_that_contradicts_the_name_or_label(filename, declared, head):
    error = detect_error(filename, declared, head)
    assert error.code == "type_mismatch"
    assert "labelled as" in error.message


@pytest.mark.parametrize(
    ("filename", "declared", "head"),
    [
        ("photo.png", "image/png", PNG),
        ("photo.png", None, PNG),
        ("photo.png", "application/octet-stream", PNG),
        ("blob", None, PNG),
        ("sheet.xlsx", None, b"PK\x03\x04"),
        ("notes.txt", "application/zip", b"hello"),
    ],
)
def test_detect_type_refuses_unsupported_types_and_names_the_supported_ones(filename, declared, head):
    error = detect_error(filename, declared, head)
    assert error.code == "unsupported_type"
    assert all(mime in error.message for mime in SUPPORTED_TYPES)


# --- formats, end to end --------------------------------------------------------------------


def test_a_pdf_gives_one_section_per_page_with_its_page_number():
    sections = parse(documents.pdf_document(documents.PDF_PAGES), PDF)

    assert [section.page for section in sections] == [1, 2]
    assert [section.text.splitlines() for section in sections] == documents.PDF_PAGES
    assert {section.heading for section in sections} == {""}


def test_pdf_pages_without_text_are_skipped():
    pages = [["First page"], [], ["Third page"]]

    sections = parse(documents.pdf_document(pages), PDF)

    assert [(section.page, section.text) for section in sections] == [(1, "First page"), (3, "Third page")]


def test_a_pdf_encrypted_with_an_empty_user_password_is_read():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(documents.pdf_document(documents.PDF_PAGES))))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)

    assert [section.page for section in parse(out.getvalue(), PDF)] == [1, 2]


def test_a_password_protected_pdf_is_refused():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(documents.pdf_document(documents.PDF_PAGES))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)

    error = parse_error(out.getvalue(), PDF)

    assert error.code == "corrupt_file"
    assert "password" in error.message


def test_a_docx_keeps_heading_paths_paragraphs_and_tables_in_order():
    sections = parse(documents.docx_document(), DOCX)

    assert sections == [
        Section("Opening remarks before any heading."),
        Section("Pick the package for your system.", heading="Install"),
        Section(
            "Run the installer as root.\n\nThen start the service.\n\nPlan | Price\nPro | 49 EUR",
            heading="Install > Linux",
        ),
        Section("Double-click the setup file.", heading="Install > Windows"),
        Section("Write to support@example.com.", heading="Support"),
    ]


def test_html_keeps_headings_and_blocks_and_drops_scripts_styles_and_navigation():
    sections = parse(documents.HTML.encode(), HTML)

    assert sections == [
        Section("Intro & welcome."),
        Section("Download the package.\n\nSecond block", heading="Install"),
        Section(
            "Run make\n\nRun tests\n\nPlan | Price\nPro | \u20ac49\n\nline one\n    indented", heading="Install > Linux"
        ),
        Section("Mail us\nany time.", heading="Support"),
    ]
    text = " ".join(section.text for section in sections)
    for noise in ("Ignored title", "color: red", "do not index", "Home", "Hidden text", "Copyright"):
        assert noise not in text


def test_markdown_splits_at_atx_headings_but_not_inside_code_fences():
    sections = parse(documents.MARKDOWN.encode(), MARKDOWN)

    assert [(section.heading, section.text) for section in sections] == [
        ("", "Preface line."),
        ("Install", "Pick a package."),
        ("Install > Linux", "Run `make`.\n\n```bash\n# not a heading\nmake install\n```"),
        ("Install > Windows", "Double-click."),
        ("Support", "Write to us."),
    ]


def test_markdown_closing_hashes_are_not_part_of_the_heading():
    sections = parse(b"## Setup ##\ntext\n### Deep\nmore", MARKDOWN)

    assert [section.heading for section in sections] == ["Setup", "Setup > Deep"]


def test_plain_text_is_one_section_with_bom_and_windows_line_endings_normalised():
    sections = parse(b"\xef\xbb\xbfFirst line\r\nSecond line\r\n\r\nNext paragraph\r\n", PLAIN)

    assert sections == [Section("First line\nSecond line\n\nNext paragraph")]


def test_utf16_text_with_a_bom_is_decoded():
    assert parse("gr\u00fc\u00dfe".encode("utf-16"), PLAIN) == [Section("gr\u00fc\u00dfe")]


def test_csv_rows_become_header_value_lines_with_empty_cells_left_out():
    sections = parse(documents.CSV.encode(), CSV)

    assert sections == [
        Section(
            "name: Ada; email: ada@example.com; plan: pro\n\n"
            "name: Bob; plan: free\n\n"
            "name: Cy; email: cy@example.com; plan: team"
        )
    ]


def test_csv_dialect_is_sniffed_and_extra_cells_get_a_column_name():
    sections = parse(b"city;zip\nBerlin;10115;extra\n", CSV)

    assert sections == [Section("city: Berlin; zip: 10115; column 3: extra")]


def test_a_long_csv_is_grouped_into_small_sections():
    rows = "\n".join(f"{index},customer {index},note about order {index}" for index in range(2000))

    sections = parse(f"id,name,note\n{rows}".encode(), CSV)

    assert len(sections) > 10
    assert all(len(section.text) < 5000 for section in sections)
    lines = [line for section in sections for line in section.text.split("\n\n")]
    assert lines[0] == "id: 0; name: customer 0; note: note about order 0"
    assert len(lines) == 2000


def test_json_is_flattened_to_key_paths():
    sections = parse(documents.JSON.encode(), JSON)

    assert sections == [
        Section(
            "service.name: AgentDesk\nservice.regions[0]: eu\nservice.regions[1]: us\n\n"
            'limits[0].rpm: 60\n\n["beta key"]: true'
        )
    ]


def test_json_top_level_lists_and_scalars_are_flattened_too():
    assert parse(b'[{"a": null}, [], "x"]', JSON) == [Section("[0].a: null\n\n[1]: []\n\n[2]: x")]
    assert parse(b'"just a string"', JSON) == [Section("just a string")]


# --- bad files ------------------------------------------------------------------------------


@pytest.mark.parametrize("mime", SUPPORTED_TYPES)
@pytest.mark.parametrize("data", [b"", b"  \n\t \r\n"])
def test_empty_and_whitespace_only_files_are_empty_documents(mime, data):
    assert parse_error(data, mime).code == "empty_document"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (documents.pdf_document([[], []]), PDF),
        (b"<html><head><title>t</title></head><body><script>x()</script></body></html>", HTML),
        (b"# Only\n## Headings\n", MARKDOWN),
        (b"name,email\n,\n", CSV),
        (documents.empty_docx(), DOCX),
    ],
)
def test_documents_without_any_text_are_empty_documents(data, mime):
    assert parse_error(data, mime).code == "empty_document"


def test_a_pdf_without_text_says_it_needs_ocr():
    assert "OCR" in parse_error(documents.pdf_document([[]]), PDF).message


def corrupt_pdfs() -> list[bytes]:
    pdf = documents.pdf_document(documents.PDF_PAGES)
    return [pdf[: len(pdf) // 2], pdf[:200], b"%PDF-1.7\n" + bytes(range(256)) * 20, b"%PDF-"]


@pytest.mark.parametrize("data", corrupt_pdfs())
def test_truncated_or_garbage_pdfs_are_corrupt_files(data):
    error = parse_error(data, PDF)

    assert error.code == "corrupt_file"
    assert error.message.startswith("The PDF file is damaged")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"Hello, this is text and not a PDF at all.", PDF),
        (b"PK\x03\x04 not really a zip", DOCX),
        (b"plain text named .docx", DOCX),
        (documents.docx_document()[:3000], DOCX),
        (documents.zip_of({"readme.txt": b"a zip, but not a Word document"}), DOCX),
        (bytes(range(256)) * 4, PLAIN),
        ("caf\u00e9".encode("latin-1"), MARKDOWN),
        (b"text\x00with\x00nul bytes", HTML),
        (b'{"a": [1, 2', JSON),
        (b"{'single': 'quotes'}", JSON),
        (b"[" * 100_000 + b"]" * 100_000, JSON),
    ],
)
def test_corrupt_input_of_any_format_raises_parse_error_only(data, mime):
    error = parse_error(data, mime)

    assert error.code == "corrupt_file"
    assert error.message


def test_parse_refuses_an_unsupported_type():
    error = parse_error(PNG, "image/png")

    assert error.code == "unsupported_type"
    assert "image/png" in error.message


@pytest.mark.parametrize("mime", [PLAIN, MARKDOWN, HTML])
def test_text_past_max_chars_is_too_large(mime):
    data = ("word " * 300).encode()

    assert parse(data, mime, max_chars=2000)
    assert parse_error(data, mime, max_chars=1000).code == "too_large"


def test_a_pdf_past_max_chars_is_too_large():
    data = documents.pdf_document([["page text " * 20]] * 5)

    assert parse_error(data, PDF, max_chars=500).code == "too_large"


def test_csv_that_renders_past_max_chars_is_too_large_even_when_the_file_is_not():
    header = ",".join(f"a_rather_long_column_name_{index}" for index in range(50))
    data = (header + "\n" + "\n".join(",".join("1" * 50) for _ in range(200))).encode()
    assert len(data) < 50_000

    assert parse_error(data, CSV, max_chars=50_000).code == "too_large"


def test_json_with_deep_key_paths_past_max_chars_is_too_large():
    nested: dict = {f"leaf{index}": 1 for index in range(2000)}
    for _ in range(50):
        nested = {"level": nested}

    error = parse_error(json.dumps(nested).encode(), JSON, max_chars=100_000)

    assert error.code == "too_large"


def test_a_docx_zip_bomb_is_refused_before_it_is_unpacked():
    bomb = documents.zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"\0" * 30_000_000})
    assert len(bomb) < 100_000

    assert parse_error(bomb, DOCX, max_chars=1_000).code == "too_large"
