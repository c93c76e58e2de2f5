"""Structural checks on rendered reports with the standard library's HTML parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

URL_ATTRIBUTES = {
    "src",
    "href",
    "xlink:href",
    "action",
    "formaction",
    "poster",
    "srcset",
    "background",
    "data",
    "manifest",
    "ping",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    parents: tuple[str, ...]


@dataclass
class ParsedPage:
    elements: list[Element] = field(default_factory=list)
    texts: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (open tags, text)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)  # aria-label -> rows

    def text_in(self, tag: str) -> list[str]:
        return [text for parents, text in self.texts if parents and parents[-1] == tag]

    def attribute_values(self) -> list[tuple[str, str, str]]:
        return [
            (e.tag, name, value or "") for e in self.elements for name, value in e.attrs.items()
        ]


class _Parser(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self.stack: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.page.elements.append(Element(tag, dict(attrs), tuple(self.stack)))
        if tag == "table":
            self._table = dict(attrs).get("aria-label") or f"table-{len(self.page.tables)}"
            self.page.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.page.elements.append(Element(tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        if data.strip():
            self.page.texts.append((tuple(self.stack), data))
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> ParsedPage:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


def external_references(html: str) -> list[str]:
    """Every tag or attribute through which the page could load or link to something remote."""
    page = parse(html)
    problems = []
    for e in page.elements:
        embedded = {"link", "iframe", "object", "embed", "base", "form", "frame", "img", "video"}
        data_img = e.tag == "img" and (e.attrs.get("src") or "").startswith("data:")
        if e.tag in embedded and not data_img:
            problems.append(f"<{e.tag}> element")
        if e.tag == "script" and "src" in e.attrs:
            problems.append("<script src>")
        if e.tag == "meta" and (e.attrs.get("http-equiv") or "").lower() == "refresh":
            problems.append("<meta refresh>")
        for name, value in e.attrs.items():
            value = (value or "").strip()
            if name.startswith("on"):
                problems.append(f"event handler attribute {name}")
            if name == "style" and ("url(" in value or "expression(" in value):
                problems.append(f"style with url(): {value}")
            if name in URL_ATTRIBUTES:
                relative = ":" not in value.split("/")[0] and not value.startswith("//")
                if not (value.startswith(("#", "data:")) or relative):
                    problems.append(f"{e.tag} {name}={value}")
                if name == "src" and not value.startswith("data:"):
                    problems.append(f"{e.tag} src={value} (only data: URIs allowed)")
    for css in page.text_in("style"):
        if "url(" in css or "@import" in css:
            problems.append("CSS url()/@import")
    return problems
