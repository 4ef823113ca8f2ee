"""A transcript writer for the follow tests: appends lines to files at random.

``python follow_writer.py SPEC.json``. The spec names the directory, the
lines of each file, a seed, the longest pause, and optionally a rotation
(``{"file": "s0.jsonl", "after": 30, "to": "s0.rotated-1.jsonl"}``: after
that many lines the file is renamed and a new one started under its name).
Lines are written unbuffered, some split into two or three writes with
pauses between them, so a reader sees partial lines. Exits 0 when every
line is written.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter, deque
from typing import BinaryIO


def _append(path: str) -> BinaryIO:
    return open(path, "ab", buffering=0)


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    rng = random.Random(spec["seed"])
    directory = spec["dir"]
    pause = spec["max_pause"]
    queues = {name: deque(lines) for name, lines in spec["files"].items()}
    handles = {name: _append(os.path.join(directory, name)) for name in queues}
    rotate = spec.get("rotate")
    written: Counter[str] = Counter()
    while any(queues.values()):
        name = rng.choice(sorted(n for n, q in queues.items() if q))
        data = queues[name].popleft().encode() + b"\n"
        if rotate and name == rotate["file"] and written[name] == rotate["after"]:
            handles[name].close()
            os.rename(os.path.join(directory, name), os.path.join(directory, rotate["to"]))
            handles[name] = _append(os.path.join(directory, name))
        cuts: list[int] = []
        if len(data) > 3 and rng.random() < 0.4:
            cuts = sorted(rng.sample(range(1, len(data)), k=2 if rng.random() < 0.5 else 1))
        start = 0
        for cut in [*cuts, len(data)]:
            handles[name].write(data[start:cut])
            start = cut
            if cut != len(data):
                time.sleep(rng.uniform(0, pause))
        written[name] += 1
        time.sleep(rng.uniform(0, pause))
    for handle in handles.values():
        handle.close()


if __name__ == "__main__":
    main(sys.argv[1])
