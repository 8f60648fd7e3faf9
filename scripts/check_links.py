#!/usr/bin/env python3
"""Checks every internal link and image of the README and of the guide (docs/*.md, the pages
of docs/SUMMARY.md): the file it points to must exist in the repository (a `#fragment` must
name a heading of a Markdown page). External links (http, https, mailto) are not fetched.

    python3 scripts/check_links.py              # exit 1 and one line per broken link
    python3 scripts/check_links.py --self-test  # a planted broken link must be caught
"""
import re
import shutil
import sys
import tempfile
from pathlib import Path

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
FENCE = re.compile(r"```.*?```", re.S)


def anchors(page: Path) -> set:
    """GitHub/mdBook heading ids of a Markdown page."""
    out = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            t = m.group(1).strip().lower()
            t = re.sub(r"[^\w\- ]", "", t)
            out.add(t.replace(" ", "-"))
    return out


def pages(root: Path) -> list:
    docs = root / "docs"
    found = [root / "README.md"] + sorted(docs.rglob("*.md"))
    return [p for p in found if "book" not in p.relative_to(root).parts[:2]]


def check(root: Path) -> list:
    bad = []
    for page in pages(root):
        text = CODE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"^(https?:|mailto:)", target):
                continue
            path, _, frag = target.partition("#")
            dest = page if not path else (page.parent / path)
            where = f"{page.relative_to(root)}: {target}"
            if not dest.exists():
                bad.append(f"{where} (no such file)")
            elif frag and dest.suffix == ".md" and frag not in anchors(dest):
                bad.append(f"{where} (no heading #{frag})")
    summary = root / "docs" / "SUMMARY.md"
    if summary.exists():
        listed = {(summary.parent / t.partition("#")[0]).resolve()
                  for t in LINK.findall(summary.read_text(encoding="utf-8"))}
        for page in pages(root):
            if page.parent.resolve() != root.resolve() and page.resolve() not in listed \
                    and page.name != "SUMMARY.md":
                bad.append(f"{page.relative_to(root)}: not in docs/SUMMARY.md")
    return bad


def self_test(root: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        copy.mkdir()
        shutil.copy(root / "README.md", copy / "README.md")
        shutil.copytree(root / "docs", copy / "docs", ignore=shutil.ignore_patterns("book"))
        for entry in root.iterdir():
            if entry.name not in ("README.md", "docs", ".git", "target"):
                (copy / entry.name).symlink_to(entry)
        if check(copy):
            print("self-test: the unmodified tree already has broken links", file=sys.stderr)
            return 1
        page = copy / "docs" / "getting-started.md"
        page.write_text(page.read_text() + "\nSee [nothing](no-such-page.md).\n")
        bad = check(copy)
        if not any("no-such-page.md" in b for b in bad):
            print("self-test: a planted broken link was not caught", file=sys.stderr)
            return 1
    print("self-test: a planted broken link is caught")
    return 0


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    if "--self-test" in sys.argv:
        return self_test(root)
    bad = check(root)
    for b in bad:
        print(f"broken link: {b}", file=sys.stderr)
    print(f"{len(pages(root))} pages checked, {len(bad)} broken links")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
