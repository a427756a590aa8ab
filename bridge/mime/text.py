"""Plain text for the ``text`` field: format=flowed unwrapped, and text derived from HTML.

Both run on attacker-controlled input inside the parser's time bound, so both are linear:
the HTML converter is a small tokenizer of its own (``html.parser`` in Python 3.11 is
quadratic on some unclosed constructs) that finds each ``<`` and ``>`` with ``str.find``.
"""

from __future__ import annotations

import html
import re

# ----------------------------------------------------------------------------- format=flowed


def unflow(text: str, delsp: bool) -> str:
    """Join the soft-broken lines of a ``format=flowed`` text (RFC 3676 section 4).

    A line ending in a space continues on the next line with the same quote depth;
    space-stuffing is removed; with ``delsp=yes`` the trailing space itself is removed too.
    The signature separator ``-- `` is never flowed. Quoted paragraphs keep their ``>``.
    """
    out: list[str] = []
    current: list[str] = []
    depth = -1

    def flush() -> None:
        nonlocal current, depth
        if depth >= 0:
            prefix = ">" * depth + " " if depth else ""
            out.append(prefix + "".join(current))
        current, depth = [], -1

    for line in text.split("\n"):
        quote = len(line) - len(line.lstrip(">"))
        content = line[quote:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing (or the space after "> ")
        if depth >= 0 and quote != depth:
            flush()  # a change of quote depth ends a paragraph (RFC 3676 4.5)
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        current.append(content)
        depth = quote
        if not flowed:
            flush()
    flush()
    return "\n".join(out)


# ----------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = (
    "address article aside blockquote caption center dd div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot "
    "thead tr ul"
)
_BLOCK = frozenset(_BLOCK_TAGS.split())
_SKIP = frozenset({"script", "style", "head", "title", "template"})
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)([^<>]*)>")
_OTHER = re.compile(r"<[!?/][^<>]*>")  # doctype, processing instruction, stray end tag
_HREF = re.compile(r"""\bhref\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\n\f\u00a0]+")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Writer:
    """Collects text, collapsing whitespace outside ``<pre>``, one blank line at most."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pre = 0
        self.trailing = 2  # line breaks at the end of the output so far

    def text(self, raw: str) -> None:
        value = html.unescape(raw)
        if not self.pre:
            value = _SPACES.sub(" ", value)
            if self.trailing or (self.parts and self.parts[-1].endswith(" ")):
                value = value.lstrip(" ")
        if value:
            self.parts.append(value)
            self.trailing = len(value) - len(value.rstrip("\n"))

    def newline(self, count: int = 1) -> None:
        """End the line, leaving ``count`` line breaks (a blank line for 2) unless already there."""
        if self.trailing < count:
            self.parts.append("\n" * (count - self.trailing))
            self.trailing = count

    def result(self) -> str:
        text = _TRAILING.sub("\n", "".join(self.parts))
        text = _BLANK_LINES.sub("\n\n", text).lstrip("\n").rstrip()
        return text + "\n" if text else ""


def html_to_text(source: str) -> str:
    """The text a reader sees in an HTML body, with line breaks where blocks break.

    A small converter, not a renderer: script/style/head content is dropped, block elements
    and ``<br>`` break lines, list items start with ``- ``, ``<pre>`` keeps its spacing,
    links whose address differs from their text are followed by ``<address>``, entities
    are decoded. Linear in the length of the HTML.
    """
    out = _Writer()
    pos, n = 0, len(source)
    link: str | None = None
    link_start = 0
    while pos < n:
        lt = source.find("<", pos)
        if lt < 0:
            out.text(source[pos:])
            break
        if lt > pos:
            out.text(source[pos:lt])
        if source.startswith("<!--", lt):
            end = source.find("-->", lt + 4)
            if end < 0:
                break  # an unclosed comment hides the rest, as in a browser
            pos = end + 3
            continue
        tag = _TAG.match(source, lt)
        if tag is None:
            other = _OTHER.match(source, lt)
            if other is not None:
                pos = other.end()
            else:
                out.text("<")
                pos = lt + 1
            continue
        pos = tag.end()
        closing, name, attrs = tag.group(1) == "/", tag.group(2).lower(), tag.group(3)
        if name in _SKIP and not closing:
            close = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(source, pos)
            pos = n if close is None else close.end()
            continue
        if name == "br":
            out.newline()
        elif name == "pre":
            out.pre += -1 if closing else 1
            out.pre = max(out.pre, 0)
            out.newline()
        elif name == "li" and not closing:
            out.newline()
            out.text("- ")
        elif name in ("td", "th") and closing:
            out.text(" ")
        elif name == "p" or (name.startswith("h") and name[1:].isdigit()):
            out.newline(2)
        elif name in _BLOCK:
            out.newline()
        elif name == "a" and not closing:
            href = _HREF.search(attrs)
            link = html.unescape(href.group(1).strip("\"'")) if href else None
            link_start = len(out.parts)
        elif name == "a" and link is not None:
            shown = "".join(out.parts[link_start:]).strip()
            if link.startswith(("http:", "https:", "mailto:")) and link.removeprefix(
                "mailto:"
            ) not in (shown, ""):
                out.text(f" <{link}>")
            link = None
    return out.result()
