"""A small reader for the DOT text the ``graphviz`` package writes, and for HTML-like labels.

The ``graphviz`` package writes one statement per line (``id [label=<...>]``, ``a -> b``,
``subgraph cluster_x {`` ... ``}``), which is all this reader handles. The tests also check
it against a real DOT parser (``graphviz-pure -Tjson``) so it cannot drift unnoticed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

_ID = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.\-]+)'
_NODE = re.compile(rf"^({_ID}) \[label=<(.*)>\]$")
_EDGE = re.compile(rf"^({_ID}) -> ({_ID})$")
_CLUSTER = re.compile(rf"^subgraph ({_ID}) \{{$")
_ATTRIBUTES = re.compile(rf"({_ID})=({_ID})")


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return re.sub(r"\\(.)", r"\1", identifier[1:-1])
    return identifier


@dataclass
class Dot:
    """Nodes (id -> label), edges (ordered ``(tail, head)``) and clusters (name -> node ids, label)."""

    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    clusters: dict = field(default_factory=dict)
    cluster_labels: dict = field(default_factory=dict)
    graph_attributes: dict = field(default_factory=dict)

    @property
    def edge_set(self) -> set:
        return set(self.edges)

    def header(self, node: str) -> str:
        return label_rows(self.nodes[node])[0][0]

    def cells(self, node: str) -> list[str]:
        """The texts of every cell below the header, row by row."""
        return [cell for row in label_rows(self.nodes[node])[1:] for cell in row]

    def header_color(self, node: str) -> str:
        root = ET.fromstring(self.nodes[node])
        return root.find("tr/td").get("bgcolor")


def parse_dot(source: str) -> Dot:
    """Parse DOT text as written by the ``graphviz`` package."""
    dot = Dot()
    stack: list[str] = []
    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.startswith(("digraph", "node [", "edge [")):
            continue
        if line.startswith("graph ["):
            attributes = {}
            for key, value in _ATTRIBUTES.findall(line[len("graph [") : -1]):
                attributes[key] = _unquote(value)
            if stack:
                dot.cluster_labels[stack[-1]] = attributes.get("label")
            else:
                dot.graph_attributes.update(attributes)
            continue
        if match := _CLUSTER.match(line):
            stack.append(_unquote(match.group(1)))
            dot.clusters[stack[-1]] = []
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        if match := _NODE.match(line):
            node = _unquote(match.group(1))
            dot.nodes[node] = match.group(2)
            for cluster in stack:
                dot.clusters[cluster].append(node)
            continue
        if match := _EDGE.match(line):
            dot.edges.append((_unquote(match.group(1)), _unquote(match.group(2))))
            continue
        raise AssertionError(f"unexpected DOT line: {raw!r}")
    return dot


def label_rows(label: str) -> list[list[str]]:
    """An HTML-like label's table as rows of cell texts (lines joined by a space)."""
    root = ET.fromstring(label)
    rows = []
    for tr in root.findall("tr"):
        cells = []
        for td in tr.findall("td"):
            text = []
            for piece in td.iter():
                if piece.tag == "br":
                    text.append("\n")
                if piece.text and piece.tag != "br":
                    text.append(piece.text)
                if piece.tail and piece is not td:
                    text.append(piece.tail)
            cells.append(" ".join(" ".join("".join(text).split("\n")).split()))
        rows.append(cells)
    return rows


def cell_lines(label: str, title: str) -> list[str]:
    """The bold lines of the detail cell titled ``title`` (``Input shape``), in order."""
    root = ET.fromstring(label)
    for td in root.iter("td"):
        font = td.find("font")
        if font is not None and (font.text or "").strip() == title:
            return ["".join(b.itertext()) for b in font.findall("b")]
    raise AssertionError(f"no cell titled {title!r} in {label}")
