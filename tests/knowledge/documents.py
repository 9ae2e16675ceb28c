"""Build real documents in memory for the parser tests: a PDF written by hand (objects, xref
table, Helvetica, BT/Tf/Td/Tj text), a DOCX written by python-docx, and the text formats."""

from __future__ import annotations

import io
import json
import zipfile

import docx


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_document(pages: list[list[str]]) -> bytes:
    """A valid PDF 1.4 with one page per entry, each line of text drawn 16 points below the last."""
    page_ids = [4 + 2 * index for index in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{pid} 0 R' for pid in page_ids)}] /Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for pid, lines in zip(page_ids, pages, strict=True):
        drawn = " ".join(f"{_pdf_string(line)} Tj 0 -16 Td" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {drawn} ET"
        objects[pid] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {pid + 1} 0 R >>"
        )
        objects[pid + 1] = f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for number in sorted(objects):
        out.write(f"{offsets[number]:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


PDF_PAGES = [
    ["Getting started with AgentDesk", "Create a project and an API key."],
    ["Billing and plans", "Invoices are sent monthly."],
]


def docx_document() -> bytes:
    """Title, Heading 1/2 sections with paragraphs, and a table under the second heading."""
    document = docx.Document()
    document.add_paragraph("Opening remarks before any heading.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Pick the package for your system.")
    document.add_heading("Linux", level=2)
    document.add_paragraph("Run the installer as root.")
    document.add_paragraph("Then start the service.")
    table = document.add_table(rows=2, cols=2)
    for row, values in zip(table.rows, [("Plan", "Price"), ("Pro", "49 EUR")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("Windows", level=2)
    document.add_paragraph("Double-click the setup file.")
    document.add_heading("Support", level=1)
    document.add_paragraph("Write to support@example.com.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def empty_docx() -> bytes:
    out = io.BytesIO()
    docx.Document().save(out)
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


HTML = """<!doctype html>
<html><head><title>Ignored title</title><style>body { color: red }</style>
<script>var secret = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<p>Intro &amp; welcome.</p>
<h1>Install</h1>
<p>Download   the
   package.</p><div>Second block</div>
<h2>Linux</h2>
<ul><li>Run <b>make</b></li><li>Run tests</li></ul>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Pro</td><td>&euro;49</td></tr></table>
<pre>line one
    indented</pre>
<h1>Support</h1>
<p>Mail us<br>any time.</p>
<div hidden>Hidden text</div>
<footer>Copyright footer</footer>
</body></html>
"""

MARKDOWN = """Preface line.

# Install

Pick a package.

## Linux

Run `make`.

```bash
# not a heading
make install
```

## Windows

Double-click.

# Support

Write to us.
"""

CSV = "name,email,plan\nAda,ada@example.com,pro\nBob,,free\n\nCy,cy@example.com,team\n"

JSON_VALUE = {"service": {"name": "AgentDesk", "regions": ["eu", "us"]}, "limits": [{"rpm": 60}], "beta key": True}
JSON = json.dumps(JSON_VALUE)
