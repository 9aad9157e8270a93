#!/usr/bin/env python3
"""Writes engine/src/metadata/function_docs.json from ksqlDB's function reference
(developer-guide/ksqldb-reference/{scalar,aggregate,table}-functions.md): each function's
description (its first paragraph) and the argument names of its documented signatures,
which DESCRIBE FUNCTION shows. Run it when the reference changes:

    scripts/function-docs.py ../shared/reference/ksqldb-docs
"""
import json
import re
import sys
from pathlib import Path

HEADING = re.compile(r"^#{2,3} \*\*`([A-Z_0-9]+)`\*\*\s*$")


def plain(text):
    """Markdown to the plain text ksqlDB's descriptions are."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = text.replace("`", "").replace("**", "")
    return " ".join(text.split())


def split_args(inner):
    """`str, pos, [len]` -> ['str', 'pos', '[len]'], commas at depth 0 only."""
    out, depth, current = [], 0, ""
    for ch in inner:
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        out.append(current.strip())
    return out


def arg_name(arg, position):
    """The name an argument's text gives it: `[len]` -> len, `col1 => x` -> col1; a
    literal (`'X'`) is named by its position."""
    arg = arg.strip("[] ")
    word = re.split(r"\s|=>|\(", arg)[0]
    word = re.sub(r"[^A-Za-z0-9_]", "", word)
    if not word or word[0].isdigit() or arg[:1] in "'\"":
        return f"arg{position}"
    return word


def signatures(name, lines):
    """Every argument list a signature block documents, optional arguments expanded and a
    variadic tail (`…`) left out."""
    found = []
    for line in lines:
        m = re.match(rf"^\s*{name}\s*\((.*)\)\s*(=>.*)?;?\s*$", line, re.IGNORECASE)
        if not m:
            continue
        args = []
        for a in split_args(m.group(1)):
            if a.strip("[] ") in ("…", "...") or "…" in a:
                break
            args.append(a)
        names = []
        lists = []
        for position, a in enumerate(args, start=1):
            if a.startswith("[") and names not in lists:
                lists.append(list(names))
            names.append(arg_name(a, position))
        lists.append(names)
        for l in lists:
            if l not in found:
                found.append(l)
    return found


def parse(path):
    docs = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = HEADING.match(lines[i])
        if not m:
            i += 1
            continue
        name = m.group(1)
        i += 1
        block, description, in_code, seen_code = [], [], False, False
        while i < len(lines) and not HEADING.match(lines[i]) and lines[i].strip() != "---":
            line = lines[i]
            if line.startswith("```"):
                in_code = not in_code
                if not in_code:
                    seen_code = True
            elif in_code and not seen_code:
                block.append(line)
            elif seen_code and not in_code:
                if line.strip():
                    description.append(line.strip())
                elif description:
                    # the first paragraph only
                    seen_code = None
            if seen_code is None:
                break
            i += 1
        while i < len(lines) and not HEADING.match(lines[i]):
            i += 1
        docs[name] = {
            "description": plain(" ".join(description)),
            "signatures": signatures(name, block),
        }
    return docs


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/ksqldb-docs")
    reference = root / "developer-guide" / "ksqldb-reference"
    docs = {}
    for page in ["scalar-functions.md", "aggregate-functions.md", "table-functions.md"]:
        docs.update(parse(reference / page))
    out = Path(__file__).resolve().parent.parent / "engine" / "src" / "metadata" / "function_docs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(docs, indent=1, sort_keys=True) + "\n")
    print(f"{len(docs)} functions written to {out}")


if __name__ == "__main__":
    main()
