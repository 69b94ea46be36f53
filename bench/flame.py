#!/usr/bin/env python3
"""Flame graphs and frame shares from py-spy's raw (collapsed) stacks.

    .venv/bin/python bench/flame.py PROFILE.txt [-o PROFILE.svg] [--title TEXT] [--lines]

`run.py --profile` records each window with `py-spy record --format raw` (one line per
distinct stack: `frame;frame;...;frame COUNT`, the root first) and renders it here, so one
recording gives both the SVG and the top-frames summary (PROFILE-top.txt). The SVG is
static (no script): hover a box for its frame, samples and share; boxes narrower than a
pixel are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import textwrap
from collections import Counter
from html import escape
from pathlib import Path

# A frame as py-spy prints it: "function (path/to/file.py:LINE)".
LIBRARY_PATH = re.compile(
    r" \(.*?/(?:lib/python3\.\d+/site-packages|site-packages|lib/python3\.\d+)/")
LINE = re.compile(r":\d+\)$")
OUR_CODE = "chat_server/"


def short_frame(frame: str, lines: bool = True) -> str:
    """A frame with the interpreter's and the venv's path prefixes cut, so the same
    function reads the same wherever Python is installed; without its line number when
    `lines` is false (then a function's samples at all its lines add up)."""
    frame = LIBRARY_PATH.sub(" (", frame.strip())
    frame = re.sub(r" \(/[^()]*?/(chat_server|bench)/", r" (\1/", frame)  # the checkout's path
    return frame if lines else LINE.sub(")", frame)


def read_stacks(path: str | Path, lines: bool = True) -> Counter[tuple[str, ...]]:
    """{stack (root first): samples} from py-spy's raw output; empty if there is none."""
    stacks: Counter[tuple[str, ...]] = Counter()
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return stacks
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(short_frame(f, lines) for f in stack.split(";"))] += int(count)
    return stacks


def inclusive(stacks: Counter[tuple[str, ...]]) -> Counter[str]:
    """Samples in which each frame is on the stack (once per sample, however deep)."""
    out: Counter[str] = Counter()
    for stack, n in stacks.items():
        for frame in set(stack):
            out[frame] += n
    return out


def exclusive(stacks: Counter[tuple[str, ...]]) -> Counter[str]:
    """Samples in which each frame is the one running (the leaf)."""
    out: Counter[str] = Counter()
    for stack, n in stacks.items():
        out[stack[-1]] += n
    return out


def origin(frame: str) -> str:
    """"ours" (chat_server/, bench/), "stdlib" or "library" (an installed package), by the
    first component of the frame's (shortened) file name."""
    match = re.search(r"\(([^/():]+)[/.:]", frame)
    top = match.group(1) if match else ""
    if top in ("chat_server", "bench"):
        return "ours"
    if not match or top in sys.stdlib_module_names or top.startswith("<"):
        return "stdlib"
    return "library"


def top_frames(stacks_by_line: Counter[tuple[str, ...]], seconds: float | None = None,
               threads: bool = False, top: int = 25) -> str:
    """The summary kept beside each flame graph: self time by line, then inclusive time
    by function (a function's samples at all its lines together, each sample once however
    often the function recurs), overall, in our code and in the installed libraries."""
    total = sum(stacks_by_line.values())
    if not total:
        return "no samples"
    by_function: Counter[tuple[str, ...]] = Counter()
    for stack, n in stacks_by_line.items():
        by_function[tuple(LINE.sub(")", f) for f in stack)] += n
    span = f" over {seconds:.0f} s" if seconds else ""
    who = "of every running thread" if threads else "of the GIL-holding thread"
    out = [f"{total} samples {who} (100 Hz){span}; shares of samples"]

    def section(title: str, counts: Counter[str], keep: int, where: str | None = None) -> None:
        out.append(title)
        rows = [(k, v) for k, v in counts.most_common() if where is None or origin(k) == where]
        out.extend(f"  {100 * v / total:5.1f}%  {k}" for k, v in rows[:keep])

    section("self time (by line):", exclusive(stacks_by_line), top)
    incl = inclusive(by_function)
    section("inclusive time (by function):", incl, top + 15)
    section("inclusive time, our code (chat_server/):", incl, 20, "ours")
    section("inclusive time, installed libraries:", incl, 20, "library")
    return "\n".join(out)


class Node:
    __slots__ = ("children", "name", "samples")

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples = 0
        self.children: dict[str, Node] = {}


def tree(stacks: Counter[tuple[str, ...]]) -> Node:
    root = Node("all")
    for stack, n in stacks.items():
        root.samples += n
        node = root
        for frame in stack:
            node = node.children.setdefault(frame, Node(frame))
            node.samples += n
    return root


def color(name: str) -> str:
    """Blue for our code, warm for the installed libraries, olive for the standard
    library, grey for what is not a function (the root, py-spy's thread frames); the hue
    varies a little by name so that neighbours stay apart."""
    jitter = int(hashlib.md5(name.encode()).hexdigest()[:4], 16) / 0xFFFF
    if not re.search(r"\(.+\.py", name):
        return "hsl(0,0%,80%)"
    where = origin(name)
    if where == "ours":
        return f"hsl({205 + 25 * jitter:.0f},70%,{62 + 10 * jitter:.0f}%)"
    if where == "library":
        return f"hsl({15 + 35 * jitter:.0f},80%,{58 + 10 * jitter:.0f}%)"
    return f"hsl({60 + 30 * jitter:.0f},35%,{62 + 10 * jitter:.0f}%)"


def render_svg(stacks: Counter[tuple[str, ...]], title: str, width: int = 1200) -> str:
    """A flame graph (the root at the bottom, callees above their callers, width =
    samples), as one self-contained SVG."""
    root = tree(stacks)
    row, pad = 16, 10
    title_lines = textwrap.wrap(title, int((width - 2 * pad) / 7.3)) or [""]  # 12 px text
    top = 16 * len(title_lines) + 24
    total = root.samples or 1
    scale = (width - 2 * pad) / total
    boxes: list[tuple[int, float, float, Node]] = []  # depth, x, width, node

    def place(node: Node, depth: int, x: float) -> int:
        w = node.samples * scale
        if w < 1.0:
            return depth - 1
        boxes.append((depth, x, w, node))
        deepest = depth
        for child in sorted(node.children.values(), key=lambda c: c.name):
            deepest = max(deepest, place(child, depth + 1, x))
            x += child.samples * scale
        return deepest

    depth = place(root, 0, pad)
    height = top + (depth + 1) * row + pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#fafafa"/>',
           *(f'<text x="{pad}" y="{18 + 16 * i}" font-size="12">{escape(line)}</text>'
             for i, line in enumerate(title_lines)),
           f'<text x="{pad}" y="{top - 6}" fill="#555">{root.samples} samples; width: share '
           'of samples. Blue: chat_server; orange: installed libraries; olive: the standard '
           'library. Hover a box for its numbers.</text>']
    for d, x, w, node in boxes:
        y = height - pad - (d + 1) * row
        share = 100.0 * node.samples / total
        label = node.name if node is not root else "all"
        tip = f"{label}: {node.samples} samples, {share:.1f}%"
        chars = int((w - 4) / 6.6)  # about 6.6 px per character at 11 px monospace
        text = label if len(label) <= chars else (label[:chars - 2] + ".." if chars > 3 else "")
        out.append(f'<g><title>{escape(tip)}</title><rect x="{x:.1f}" y="{y}" '
                   f'width="{w:.1f}" height="{row - 1}" fill="{color(label)}" rx="1"/>'
                   + (f'<text x="{x + 2:.1f}" y="{y + row - 4}">{escape(text)}</text>'
                      if text else "") + "</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", help="py-spy's raw output (record --format raw)")
    parser.add_argument("-o", "--output", help="the SVG to write (default: RAW with .svg)")
    parser.add_argument("--title", help="the graph's title (default: the file's name)")
    parser.add_argument("--lines", action="store_true",
                        help="keep line numbers: one box per line of a function")
    args = parser.parse_args(argv)
    stacks = read_stacks(args.raw, lines=args.lines)
    if not stacks:
        parser.error(f"no stacks in {args.raw}")
    output = Path(args.output or Path(args.raw).with_suffix(".svg"))
    output.write_text(render_svg(stacks, args.title or Path(args.raw).name))
    summary = output.with_name(output.stem + "-top.txt")
    summary.write_text(top_frames(read_stacks(args.raw)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
