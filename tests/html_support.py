"""Reading the attributes of a page's elements in tests (the portal's ``data-*`` numbers)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tags(HTMLParser):
    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute, self.found = attribute, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self.attribute in values:
            self.found.append({"tag": tag, **values})


def tagged(html: str, attribute: str) -> list[dict[str, str | None]]:
    """The attributes of every element of ``html`` that has ``attribute``, in order."""
    parser = _Tags(attribute)
    parser.feed(html)
    return parser.found
