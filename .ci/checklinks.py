"""
Check that every link inside a built HTML documentation tree resolves.

Usage: python .ci/checklinks.py DIRECTORY.  Each href and src of every
.html file is checked: a relative link must name an existing file and, with
a #fragment, an id or name in that file.  Links with a scheme (https:,
mailto:, ...) are external and are not fetched.  Prints each broken link
and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.anchors.add(value)
            elif name in ("href", "src"):
                self.links.append(value)


def main(root: Path) -> int:
    pages: dict[Path, _Page] = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = page
    if not pages:
        print(f"checklinks: no HTML pages under {root}")
        return 1
    broken = 0
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue
            target = (
                (path.parent / unquote(parts.path)).resolve() if parts.path else path
            )
            if not target.exists():
                print(f"{path.relative_to(root.resolve())}: missing file {link}")
                broken += 1
                continue
            if parts.fragment and target.suffix == ".html":
                anchors = pages[target].anchors if target in pages else set()
                if unquote(parts.fragment) not in anchors:
                    print(f"{path.relative_to(root.resolve())}: missing anchor {link}")
                    broken += 1
    print(f"checklinks: {len(pages)} pages, {broken} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
