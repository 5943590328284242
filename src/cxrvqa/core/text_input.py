"""Reading text inputs (report files, CSVs, manifests): one helper, so that every loader treats
byte-order marks, bytes that are not UTF-8, binary data and ragged CSV rows the same way.

- A UTF-8 byte-order mark (Excel's "CSV UTF-8") is skipped; a UTF-16 one (Excel's "Unicode Text")
  means the file is UTF-16.
- Bytes are decoded as UTF-8 (or that UTF-16), strictly: a byte that is not UTF-8 never becomes U+FFFD silently.
  It is kept as a lone surrogate (Python's ``surrogateescape``), so that the record holding it,
  not the whole file, is rejected, and `encoding_problem` names its byte offset in the file.
- `not_text` says why decoded text is not text at all (binary data read as a report).
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrvqa.errors import InputError

csv.field_size_limit(sys.maxsize)  # a 1 MB field is bad input to reject with a reason, not a crash

BOM = b"\xef\xbb\xbf"
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
#: What a byte that is not UTF-8 decodes to under surrogateescape (U+DC80..U+DCFF).
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
#: What a database cannot store (unpaired surrogates, e.g. from a JSON \\u escape) or should not store
#: silently (U+FFFD: text decoded with the wrong encoding before it reached us).
_UNSTORABLE = re.compile("[\ud800-\udfff\ufffd]")
#: Characters that never occur in text: control characters other than tab, newline, carriage return and form
#: feed (C1 included), and bytes that are not UTF-8.
_BINARY = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\udc80-\udcff]")
#: More of them than this share of a text: binary data, not text. Random bytes score ~55%; a legacy-encoded
#: report ~1-3% (then `invalid_encoding`, not binary); a stray NUL or terminal escape in a report, a few %.
MAX_BINARY_SHARE = 0.25


@dataclass(frozen=True)
class Problem:
    """What was expected of a text and what was found: a reject's detail, or an InputError's parts."""

    expected: str
    found: str

    def __str__(self) -> str:
        return f"expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    offset: int  # byte offset of its first byte in the file (after a byte-order mark)
    text: str  # decoded, line ending kept; a byte that is not UTF-8 (UTF-16) is a lone surrogate
    encoding: str = "utf-8"


def read_lines(path: Path) -> Iterator[Line]:
    """The lines of a file with their byte offsets: UTF-8 without its byte-order mark, or UTF-16 after one;
    undecodable bytes kept as lone surrogates. A file the OS cannot read is an InputError."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputError(str(path), "a readable file", f"{type(exc).__name__}: {exc.strerror}") from exc
    with handle:
        encoding = UTF16_BOMS.get(handle.read(2))
        if encoding is not None:
            yield from _utf16_lines(handle.read(), encoding)
            return
        handle.seek(0)
        offset = 0
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw, offset = raw[len(BOM) :], len(BOM)
            yield Line(number, offset, raw.decode("utf-8", "surrogateescape"))
            offset += len(raw)


def _utf16_lines(data: bytes, encoding: str) -> Iterator[Line]:
    offset = 2  # the byte-order mark
    for number, text in enumerate(re.findall("[^\n]*\n|[^\n]+$", data.decode(encoding, "surrogateescape")), start=1):
        yield Line(number, offset, text, encoding)
        offset += len(text.encode(encoding, "surrogateescape"))


def encoding_problem(lines: Sequence[Line]) -> Problem | None:
    """Why the bytes of these lines (one record) cannot be stored as text, naming the byte offset; None if they can."""
    for line in lines:
        match = _ESCAPED_BYTE.search(line.text) or _UNSTORABLE.search(line.text)
        if match is None:
            continue
        offset = line.offset + len(line.text[: match.start()].encode(line.encoding, "surrogateescape"))
        char = match.group()
        if _ESCAPED_BYTE.fullmatch(char):
            name = line.encoding.upper().removesuffix("-LE").removesuffix("-BE")
            return Problem(
                f"{name} text",
                f"byte 0x{ord(char) - 0xDC00:02x} at byte offset {offset} (line "
                f"{line.number}); convert the file to UTF-8 (e.g. iconv -f cp1252 -t utf-8)",
            )
        return Problem(
            "text without U+FFFD (a replacement character: the text was decoded with the wrong encoding "
            "before it reached cxrvqa)",
            f"one at byte offset {offset} (line {line.number})",
        )
    return None


def unstorable_char(text: str, field: str) -> Problem | None:
    """Why a decoded value (e.g. from a JSON \\u escape) cannot be stored: an unpaired surrogate or U+FFFD."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    return Problem(
        "text without unpaired surrogates or U+FFFD",
        f"U+{ord(match.group()):04X} at character {match.start()} of {field}",
    )


def not_text(text: str) -> Problem | None:
    """Why a text is binary data rather than text (control characters, NULs, bytes that are not UTF-8, no
    letter); None if it is text. A text of whitespace only is not judged here: it is empty, not binary.
    """
    if not text.strip():
        return None
    binary = _BINARY.findall(text)
    if len(binary) > MAX_BINARY_SHARE * len(text):
        nuls = binary.count("\x00")
        undecodable = sum(1 for c in binary if c >= "\udc80")
        return Problem(
            f"text (at most {MAX_BINARY_SHARE:.0%} control characters or bytes that are not UTF-8)",
            f"binary data: {len(binary)} of {len(text)} characters ({nuls} NUL, {undecodable} not UTF-8)",
        )
    if not any(c.isalpha() for c in text):
        return Problem("text with letters", f"none in {len(text)} characters")
    return None


def printable(name: str) -> str:
    """A file name as text that can be stored and shown: bytes that are not UTF-8 as \\x escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class CsvRecord:
    """One CSV record (a header or a row) and the physical lines it spans (a quoted field may hold newlines)."""

    cells: list[str] | None  # None when the csv module could not parse it (problem says why)
    lines: tuple[Line, ...]
    problem: str = ""

    @property
    def line(self) -> int:
        return self.lines[0].number

    def shape_problem(self, width: int, names: Sequence[str]) -> Problem | None:
        """Why this row does not fit a header of ``width`` fields; trailing empty cells a spreadsheet pads
        rows with are not fields."""
        if self.cells is None:
            return Problem("a CSV row", f"one the csv module cannot read ({self.problem})")
        found = len(self.cells)
        while found > width and not self.cells[found - 1].strip():
            found -= 1
        if found == width:
            return None
        return Problem(f"{width} fields ({', '.join(names)})", str(found))


def read_csv(path: Path) -> Iterator[CsvRecord]:
    """Every record of a CSV file, the header first; blank lines (and rows of empty cells) are not records."""
    consumed: list[Line] = []

    def texts() -> Iterator[str]:
        for line in read_lines(path):
            consumed.append(line)
            yield line.text

    reader = csv.reader(texts())
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            lines, consumed[:] = tuple(consumed), []
            if lines:
                yield CsvRecord(None, lines, str(exc))
            continue
        lines, consumed[:] = tuple(consumed), []
        if any(cell.strip() for cell in cells):
            yield CsvRecord(cells, lines)


def header_names(header: CsvRecord, path: Path) -> list[str]:
    """The stripped column names of a header record; InputError when the header is not text (it names every
    column in later messages, so it must be readable)."""
    problem = encoding_problem(header.lines) or not_text("".join(line.text for line in header.lines))
    if problem is None and header.cells is None:
        problem = Problem("a CSV header", f"one the csv module cannot read ({header.problem})")
    if problem is not None:
        raise InputError(f"{path}:{header.line}", problem.expected, problem.found)
    return [cell.strip() for cell in header.cells or []]
