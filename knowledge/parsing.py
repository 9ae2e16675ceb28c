"""Turn uploaded documents into ordered text sections (pure Python, no database).

``detect_type`` decides what an upload is from its name, its declared content type and its first
bytes; ``parse`` turns the bytes into :class:`Section` objects that keep the structure the chunker
needs: the heading path a passage sits under and, for PDFs, its page.

Every failure is a :class:`ParseError` with a stable ``code`` (``unsupported_type``,
``type_mismatch``, ``empty_document``, ``corrupt_file``, ``too_large``); whatever the parser
libraries raise on hostile or broken input is wrapped, so callers handle exactly one exception.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

import docx
from docx.table import Table
from pypdf import PasswordType, PdfReader
from pypdf.errors import LimitReachedError

PLAIN = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CSV = "text/csv"
JSON = "application/json"

SUPPORTED_TYPES: tuple[str, ...] = (PLAIN, MARKDOWN, HTML, PDF, DOCX, CSV, JSON)
_TEXT_TYPES = frozenset({PLAIN, MARKDOWN, HTML, CSV, JSON})

DEFAULT_MAX_CHARS = 5_000_000

_EXTENSIONS = {
    ".txt": PLAIN,
    ".text": PLAIN,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
    ".csv": CSV,
    ".json": JSON,
}
# Names clients and older tools still send for the same formats.
_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
    "application/csv": CSV,
    "text/json": JSON,
}
# Declarations that say nothing about the format: the extension decides. Browsers and HTTP
# clients label any text file text/plain, so it yields to a more specific extension as well.
_WEAK_DECLARATIONS = frozenset({"", "application/octet-stream", "binary/octet-stream", PLAIN})

_PDF_MAGIC = b"%PDF-"
_ZIP_MAGIC = b"PK\x03\x04"
# A DOCX whose members unzip to more than max_chars times this (and more than the floor, which
# leaves room for images) is refused unread, so a zip bomb never reaches python-docx. XML markup
# is several times the text it carries.
_DOCX_BYTES_PER_CHAR = 20
_DOCX_MIN_UNZIPPED = 20_000_000
# CSV rows and JSON records are grouped into sections of about this many characters.
_GROUP_CHARS = 4_000


class ParseError(Exception):
    """A document that cannot be turned into text; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Section:
    """A run of text under one heading path (``"Install > Linux"``), on one page for PDFs."""

    text: str
    heading: str = ""
    page: int | None = None


def _unsupported(what: str) -> ParseError:
    return ParseError("unsupported_type", f"{what} are not supported; use one of {', '.join(SUPPORTED_TYPES)}.")


def _normalize_declared(declared: str | None) -> str:
    mime = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(mime, mime)


def detect_type(filename: str, declared: str | None, head: bytes) -> str:
    """The MIME type to parse an upload as, once its first bytes agree with its name and label.

    A specific declared type wins over the extension; ``application/octet-stream``, ``text/plain``
    or nothing defer to a known extension; with neither, the content decides: UTF-8 text is
    ``text/plain``, a PDF is a PDF, anything else (images, spreadsheets, archives) is refused.
    ``head`` is the start of the file (a few KiB is enough). Raises ``ParseError`` with
    ``unsupported_type`` or ``type_mismatch``.
    """
    extension = PurePath(filename or "").suffix.lower()
    by_extension = _EXTENSIONS.get(extension)
    mime = _normalize_declared(declared)
    if mime not in _WEAK_DECLARATIONS:
        if mime not in SUPPORTED_TYPES:
            raise _unsupported(f"Files of type {mime}")
        chosen = mime
    elif by_extension:
        chosen = by_extension
    elif mime == PLAIN or _is_text(head):  # source code, .rst, a title with a dot in it: text
        chosen = PLAIN
    elif head.startswith(_PDF_MAGIC):
        chosen = PDF
    else:
        raise _unsupported(f"Files ending in {extension}" if extension else "Files of this kind (neither text nor PDF)")
    _check_content(chosen, head)
    return chosen


def _check_content(mime: str, head: bytes) -> None:
    if mime == PDF and not head.startswith(_PDF_MAGIC):
        raise ParseError("type_mismatch", "The file is labelled as a PDF but its content is not a PDF.")
    if mime == DOCX and not head.startswith(_ZIP_MAGIC):
        raise ParseError("type_mismatch", "The file is labelled as a Word document (.docx) but it is not one.")
    if mime in _TEXT_TYPES and head and not _is_text(head):
        raise ParseError("type_mismatch", f"The file is labelled as {mime} but its content is not UTF-8 text.")


def _is_text(head: bytes) -> bool:
    """Whether a file's start decodes as text; a character cut at the end of ``head`` is fine."""
    if head.startswith((_PDF_MAGIC, _ZIP_MAGIC)):
        return False
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            return _decodes(head[len(bom) :], encoding)
    return b"\x00" not in head and _decodes(head, "utf-8-sig")


def _decodes(head: bytes, encoding: str) -> bool:
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    controls = sum(1 for char in text if char < " " and char not in "\t\n\r\f\v")
    return controls * 20 <= len(text)


def parse(data: bytes, mime_type: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Section]:
    """The document as ordered, non-empty sections; at most ``max_chars`` characters of text.

    Raises ``ParseError``: ``unsupported_type``, ``empty_document`` (nothing but whitespace, or a
    PDF of scanned images), ``corrupt_file`` (anything the format's parser chokes on) or
    ``too_large`` (more text than ``max_chars``, checked while extracting, not after).
    """
    mime = _normalize_declared(mime_type)
    parser = _PARSERS.get(mime)
    if parser is None:
        raise _unsupported(f"Files of type {mime}")
    if not data.strip():
        raise ParseError("empty_document", "The document is empty.")
    sections: list[Section] = []
    total = 0
    try:
        for section in parser(data, max_chars):
            text = section.text.strip("\n")
            if not text.strip():
                continue
            total += len(text)
            if total > max_chars:
                raise ParseError("too_large", f"The document has more than {max_chars:,} characters of text.")
            sections.append(Section(text=text, heading=section.heading, page=section.page))
    except ParseError:
        raise
    except Exception as exc:  # whatever a parser library raises on broken input
        raise _corrupt(mime, exc) from exc
    if not sections:
        scanned = " (scanned pages need OCR first)" if mime == PDF else ""
        raise ParseError("empty_document", f"The document contains no text{scanned}.")
    return sections


def _corrupt(mime: str, exc: Exception) -> ParseError:
    if isinstance(exc, LimitReachedError):
        return ParseError("too_large", "The PDF expands past the size we can read.")
    detail = str(exc) or type(exc).__name__
    return ParseError("corrupt_file", f"The {_NAMES[mime]} file is damaged or not valid: {detail}"[:500])


_NAMES = {PLAIN: "text", MARKDOWN: "Markdown", HTML: "HTML", PDF: "PDF", DOCX: "Word", CSV: "CSV", JSON: "JSON"}


# --- text ---------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped), or UTF-16 when its BOM says so (Windows 'Unicode' files)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError("corrupt_file", f"The file is not UTF-8 text (bad byte at offset {exc.start}).") from exc
    if "\x00" in text:
        raise ParseError("corrupt_file", "The file contains binary data, not text.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_plain(data: bytes, max_chars: int) -> Iterator[Section]:
    yield Section(text=_decode(data))


class _HeadingPath:
    """The stack of headings above the current position, rendered ``"Install > Linux"``."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> str:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        if title:
            self._stack.append((level, title))
        return str(self)

    def __str__(self) -> str:
        return " > ".join(title for _, title in self._stack)


# --- Markdown -----------------------------------------------------------------------------

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _parse_markdown(data: bytes, max_chars: int) -> Iterator[Section]:
    """Sections split at ATX headings (``#`` to ``######``), skipping ``#`` lines inside code fences."""
    path = _HeadingPath()
    heading = ""
    body: list[str] = []
    fence = ""
    for line in _decode(data).split("\n"):
        if fence:
            if line.lstrip(" ").startswith(fence):
                fence = ""
        elif match := _FENCE.match(line):
            fence = match.group(1)
        elif match := _ATX_HEADING.match(line):
            yield Section(text="\n".join(body), heading=heading)
            heading = path.enter(len(match.group(1)), (match.group(2) or "").strip())
            body = []
            continue
        body.append(line)
    yield Section(text="\n".join(body), heading=heading)


# --- HTML ---------------------------------------------------------------------------------

# Page furniture and code, not content.
_HTML_SKIP = frozenset(
    {"head", "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "nav", "aside", "footer"}
)
_HTML_SKIP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "form", "header", "hr", "li", "main", "ol", "p", "pre", "section",
        "summary", "table", "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip
_HTML_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"\s+")


class _HTMLText(HTMLParser):
    """Collects paragraphs per heading; entities arrive decoded (``convert_charrefs``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._path = _HeadingPath()
        self._heading = ""
        self._paragraphs: list[str] = []
        self._buffer: list[str] = []
        self._skipping: list[str] = []
        self._title: list[str] | None = None
        self._title_level = 0
        self._pre = 0
        self._cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.append(tag)
            return
        attributes = dict(attrs)
        if tag not in _HTML_VOID and (
            tag in _HTML_SKIP or attributes.get("role") in _HTML_SKIP_ROLES or "hidden" in attributes
        ):
            self._skipping.append(tag)
        elif tag in _HTML_HEADINGS:
            self._flush_section()
            self._title, self._title_level = [], _HTML_HEADINGS[tag]
        elif tag in ("td", "th"):
            if self._cells:
                self._buffer.append(" | ")
            self._cells += 1
        elif tag in ("br", "tr"):  # a table row is a line of the table's paragraph
            self._buffer.append("\n")
            self._cells = 0
        elif tag in _HTML_BLOCKS:
            self._flush_paragraph()
            self._cells = 0
            if tag == "pre":
                self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            return
        if tag in _HTML_HEADINGS and self._title is not None:
            title = _SPACES.sub(" ", "".join(self._title)).strip()
            self._heading = self._path.enter(self._title_level, title)
            self._title = None
        elif tag in _HTML_BLOCKS:
            self._flush_paragraph()
            if tag == "pre" and self._pre:
                self._pre -= 1

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        target = self._title if self._title is not None else self._buffer
        target.append(data if self._pre else _SPACES.sub(" ", data))

    def close(self) -> None:
        super().close()
        self._flush_section()

    def _flush_paragraph(self) -> None:
        text = "".join(self._buffer)
        self._buffer = []
        if not self._pre:  # inline whitespace is already collapsed; <br> left the line breaks
            text = "\n".join(line.strip() for line in text.split("\n"))
        if text.strip():
            self._paragraphs.append(text.strip("\n"))

    def _flush_section(self) -> None:
        self._flush_paragraph()
        if self._paragraphs:
            self.sections.append(Section(text="\n\n".join(self._paragraphs), heading=self._heading))
        self._paragraphs = []


def _parse_html(data: bytes, max_chars: int) -> Iterator[Section]:
    """Headings h1 to h6 start sections; block elements are paragraph breaks; scripts, styles and
    navigation are dropped."""
    parser = _HTMLText()
    parser.feed(_decode(data))
    parser.close()
    yield from parser.sections


# --- PDF ----------------------------------------------------------------------------------


def _parse_pdf(data: bytes, max_chars: int) -> Iterator[Section]:
    """One section per page with text (pages that are only images have none to give)."""
    reader = PdfReader(io.BytesIO(data))
    # Many PDFs are "encrypted" with an empty user password only to restrict printing or editing.
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise ParseError("corrupt_file", "The PDF is protected by a password; upload an unprotected copy.")
    for number, page in enumerate(reader.pages, start=1):
        yield Section(text=page.extract_text() or "", page=number)


# --- DOCX ---------------------------------------------------------------------------------

_DOCX_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _parse_docx(data: bytes, max_chars: int) -> Iterator[Section]:
    """Paragraphs grouped under ``Heading N`` (and ``Title``) styles; each table becomes one
    paragraph of ``cell | cell`` lines. Headers, footers and comments are left out."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unzipped = sum(member.file_size for member in archive.infolist())
    if unzipped > max(max_chars * _DOCX_BYTES_PER_CHAR, _DOCX_MIN_UNZIPPED):
        raise ParseError("too_large", f"The Word document unpacks to {unzipped:,} bytes, more than we read.")

    document = docx.Document(io.BytesIO(data))
    path = _HeadingPath()
    heading = ""
    paragraphs: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            paragraphs.append(_docx_table(block))
            continue
        style = block.style.name if block.style is not None else ""
        level = 0 if style == "Title" else _docx_heading_level(style)
        if level is None:
            paragraphs.append(block.text)
            continue
        yield Section(text="\n\n".join(p for p in paragraphs if p.strip()), heading=heading)
        heading = path.enter(level, block.text.strip())
        paragraphs = []
    yield Section(text="\n\n".join(p for p in paragraphs if p.strip()), heading=heading)


def _docx_heading_level(style: str) -> int | None:
    match = _DOCX_HEADING_STYLE.match(style)
    return int(match.group(1)) if match else None


def _docx_table(table: Any) -> str:
    """Rows as ``cell | cell`` lines; a merged cell, which python-docx repeats, is written once."""
    lines = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is not previous:
                cells.append(" ".join(cell.text.split()))
            previous = cell._tc
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


# --- CSV and JSON -------------------------------------------------------------------------


def _grouped(records: Iterable[Iterable[str]], max_chars: int) -> Iterator[Section]:
    """Records (CSV rows, JSON items) as paragraphs of lines, a few KiB of them per section.

    Rendering can be far longer than the input (a header repeated on every row, deep key paths on
    every leaf), so the budget is checked line by line, before a record is ever whole.
    """
    group: list[str] = []
    size = total = 0
    for record in records:
        lines = []
        for line in record:
            total += len(line) + 1
            if total > max_chars:
                raise ParseError("too_large", f"The document has more than {max_chars:,} characters of text.")
            lines.append(line)
        group.append("\n".join(lines))
        size += len(group[-1]) + 2
        if size >= _GROUP_CHARS:
            yield Section(text="\n\n".join(group))
            group, size = [], 0
    if group:
        yield Section(text="\n\n".join(group))


_CSV_DELIMITERS = ",;\t|"


def _parse_csv(data: bytes, max_chars: int) -> Iterator[Section]:
    """The first row names the columns; every other row becomes ``name: value; name: value``."""
    text = _decode(data)
    try:  # only the delimiter: the sniffer's guesses at quoting are wrong more often than excel's
        delimiter = csv.Sniffer().sniff(text[:65_536], delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:  # ragged rows or a single column: the header line's commonest delimiter
        delimiter = max(_CSV_DELIMITERS, key=text.split("\n", 1)[0].count)
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip() for name in next(rows, [])]
    yield from _grouped(([line] for line in _csv_rows(rows, header)), max_chars)


def _csv_rows(rows: Iterable[list[str]], header: list[str]) -> Iterator[str]:
    for row in rows:
        pairs = [f"{_csv_column(header, index)}: {value.strip()}" for index, value in enumerate(row) if value.strip()]
        if pairs:
            yield "; ".join(pairs)


def _csv_column(header: list[str], index: int) -> str:
    return header[index] if index < len(header) and header[index] else f"column {index + 1}"


_PLAIN_KEY = re.compile(r"^[^\W\d]\w*$")


def _parse_json(data: bytes, max_chars: int) -> Iterator[Section]:
    """Every leaf as a ``a.b[0].c: value`` line; each top-level item or key is one record."""
    value = json.loads(_decode(data))
    if isinstance(value, list):
        items: Iterable[tuple[str, Any]] = ((f"[{index}]", item) for index, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((_json_key("", key), item) for key, item in value.items())
    else:
        items = [("", value)]
    yield from _grouped((_json_lines(path, item) for path, item in items), max_chars)


def _json_key(prefix: str, key: str) -> str:
    """``a.b`` for identifier-like keys, ``a["b c"]`` for the rest, so every path reads back."""
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key, ensure_ascii=False)}]"


def _json_lines(path: str, value: Any) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _json_lines(_json_key(path, key), item)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _json_lines(f"{path}[{index}]", item)
    else:
        rendered = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        yield f"{path}: {rendered}" if path else rendered


_PARSERS = {
    PLAIN: _parse_plain,
    MARKDOWN: _parse_markdown,
    HTML: _parse_html,
    PDF: _parse_pdf,
    DOCX: _parse_docx,
    CSV: _parse_csv,
    JSON: _parse_json,
}
