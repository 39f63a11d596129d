"""Word-, character- and whitespace-level tokenisers with one ``<eos>`` per line.

Word level is a regexp tokeniser: its output equals nltk's ``RegexpTokenizer(_WORD_PATTERN)``
(tested), which needs no downloaded data, unlike ``word_tokenize`` (punkt). We call ``re``
directly because importing nltk takes ~3 s and its wrapper runs ~4x slower; the Treebank-style
``NLTKWordTokenizer`` was ruled out for speed (~35 s on the built-in corpus against ~1 s).
"""

from __future__ import annotations

import re

from pyjlode.data.errors import DataError

EOS = "<eos>"
UNK = "<unk>"
SPECIALS = (UNK, EOS)
LEVELS = ("word", "char", "space")

# Order matters: the first alternative that matches at a position wins. A newline is a token
# too, so one findall over the whole text does the work (a call per line costs 3x more).
_WORD_PATTERN = "|".join([
    r"\n",                          # end of line -> <eos>
    r"<[a-z]+>",                    # special tokens already in the text: <unk> (PTB, WikiText)
    r"@[-.,]@",                     # WikiText's split-number markers: 1 @,@ 000
    r"'(?i:tis|twas|s|d|ll|re|ve|m|t)\b",  # elisions and clitics: 'Tis, 's
    r"\w+(?:['’-]\w+)*",            # words with inner apostrophes or hyphens: to-night, appear'd
    r"-{2,}|\.{2,}",                # dashes and ellipses as one token
    r"[^\w\s]",                     # any other single punctuation mark
])

# Detokenisation: no space before closing punctuation or clitics, none after opening brackets.
_NO_SPACE_BEFORE = re.compile(r" (?=[,.;:!?)\]}]|'(?:s|d|ll|re|ve|m)\b|n't\b)")
_NO_SPACE_AFTER = re.compile(r"(?<=[(\[{]) ")
_WIKI_MARKER = re.compile(r" @([-.,])@ ")
_SPACE_SPLIT = re.compile(r"[^\s]+|\n")
_WORD_REGEXP = re.compile(_WORD_PATTERN)


def text_lines(text: str) -> list[str]:
    """Split on newlines; a final newline ends the last line rather than starting an empty one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class Tokenizer:
    """Turns text into tokens, one ``"<eos>"`` after every line (empty lines included).

    Args:
        level: ``"word"`` (regexp: words with inner ' or -, and punctuation marks),
            ``"char"`` (one token per character) or ``"space"`` (whitespace split, for
            pre-tokenised PTB and WikiText-2: reproduces their published token counts).
        lowercase: lower-case the text before tokenising.

    Raises:
        DataError: if ``level`` is not one of ``LEVELS``.
    """

    def __init__(self, level: str = "word", lowercase: bool = False):
        if level not in LEVELS:
            raise DataError(f"unknown tokenisation level {level!r}; choose one of: {', '.join(LEVELS)}")
        self.level = level
        self.lowercase = bool(lowercase)

    def __repr__(self) -> str:
        return f"Tokenizer(level={self.level!r}, lowercase={self.lowercase})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def tokenize(self, text: str) -> list[str]:
        """Tokenise ``text``; every line, empty or not, ends with ``"<eos>"``.

        Args:
            text: the raw text (``\\n``, ``\\r\\n`` or ``\\r`` line ends).

        Returns:
            The list of token strings.
        """
        lines = text_lines(text.lower() if self.lowercase else text)
        if not lines:
            return []
        text = "\n".join(lines) + "\n"
        if self.level == "char":
            return [EOS if c == "\n" else c for c in text]
        if self.level == "space":
            found = _SPACE_SPLIT.findall(text)
        else:
            found = _WORD_REGEXP.findall(text)
        return [EOS if t == "\n" else t for t in found]

    def detokenize(self, tokens: list[str]) -> str:
        """Join tokens back into readable text; ``"<eos>"`` becomes a newline.

        Word level undoes the spacing around punctuation that ``tokenize`` introduced; word and space
        levels join WikiText's number and hyphen markers (``1 @,@ 000`` -> ``1,000``, ``well @-@ known``
        -> ``well-known``). The result is what sacrebleu expects (detokenised text), not necessarily the
        original.
        """
        lines, current = [], []
        for tok in tokens:
            if tok == EOS:
                lines.append(self._join(current))
                current = []
            else:
                current.append(tok)
        if current:
            lines.append(self._join(current))
        return "\n".join(lines)

    def _join(self, tokens: list[str]) -> str:
        if self.level == "char":
            return "".join(tokens)
        text = " ".join(tokens)
        if self.level == "word":
            text = _NO_SPACE_AFTER.sub("", _NO_SPACE_BEFORE.sub("", text))
        return _WIKI_MARKER.sub(r"\1", text)       # WikiText's 1 @,@ 000 and well @-@ known, joined up

    def to_dict(self) -> dict:
        """Plain-data settings for a checkpoint."""
        return {"level": self.level, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        """Rebuild from ``to_dict()`` output.

        Raises:
            DataError: if ``d`` is not such a dict.
        """
        if not isinstance(d, dict) or "level" not in d:
            raise DataError("tokenizer settings in the checkpoint are missing or malformed; "
                            "re-create the checkpoint")
        return cls(level=d["level"], lowercase=bool(d.get("lowercase", False)))
