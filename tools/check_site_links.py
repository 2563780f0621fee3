"""Check that every internal link of the built documentation site resolves to a file.

The site is opened from disk (``site/index.html``), where a link to a folder shows a file
listing instead of a page: every ``href`` and ``src`` that stays inside the site must name
a file that exists, and a ``#fragment`` must name an id of that page.

Usage: ``python tools/check_site_links.py site``; exits 1 listing every broken link.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """The links and the element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id":
                self.ids.add(value)
            elif name in ("href", "src") and tag != "base":
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """``page: link (why)`` for every internal link of ``site`` that does not resolve."""
    pages = {p: _parse(p) for p in sorted(site.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        if path.name == "404.html" and path.parent == site:
            continue  # a web server's error page, linked from the server's root, not from disk
        for link in page.links:
            url = urlsplit(link)
            if url.scheme or url.netloc or link.startswith(("//", "mailto:", "data:")):
                continue  # outside the site
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            where = f"{path.relative_to(site)}: {link}"
            if not target.is_relative_to(site.resolve()):
                broken.append(f"{where} (leaves the site)")
            elif not target.is_file():
                broken.append(f"{where} ({'a folder' if target.is_dir() else 'no such file'})")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{where} (no id {url.fragment!r} on that page)")
    return broken


def main() -> int:
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "site").resolve()
    if not (site / "index.html").is_file():
        print(f"{site}: no built site (run mkdocs build first)", file=sys.stderr)
        return 1
    broken = broken_links(site)
    for line in broken:
        print(line, file=sys.stderr)
    print(f"{site}: {len(broken)} broken internal links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
