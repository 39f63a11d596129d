"""Downloads against a local stand-in (http.server on 127.0.0.1, file:// URLs), never the internet."""

import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile
from dataclasses import replace

import pytest

from pyjlode.data import DataError, default_cache_dir, load_splits
from pyjlode.data import download
from pyjlode.data.download import SOURCES, RemoteFile

TEXT = "".join(f"First Citizen line {i}:\nSpeak, speak.\n" for i in range(20)).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pin(monkeypatch, corpus, **digests):
    """Point SOURCES[corpus] at the test's own files: expected digests replaced by theirs."""
    files = tuple(replace(rf, algo="sha256", digest=digests.get(rf.name, "0" * 64)) for rf in SOURCES[corpus])
    monkeypatch.setitem(SOURCES, corpus, files)


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1; yields (base_url, folder, request log)."""
    www = tmp_path / "www"
    www.mkdir()
    log = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def do_GET(self):
            log.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www, log
    httpd.shutdown()
    httpd.server_close()


def cache_files(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def test_download_verifies_then_hits_the_cache(server, tmp_path, monkeypatch):
    base, www, log = server
    (www / "input.txt").write_bytes(TEXT)
    pin(monkeypatch, "tiny-shakespeare", **{"input.txt": sha256(TEXT)})
    cache = tmp_path / "cache"
    first = load_splits("tiny-shakespeare", cache_dir=str(cache), url_override=base)
    assert log == ["/input.txt"]
    assert (cache / "tiny-shakespeare" / "input.txt").read_bytes() == TEXT
    assert cache_files(cache) == ["input.txt"]  # no temp file left behind
    second = load_splits("tiny-shakespeare", cache_dir=str(cache), url_override=base)
    assert log == ["/input.txt"] and second == first  # cache hit: no second request
    assert "".join(first.values()) == TEXT.decode()


def test_env_url_and_file_urls_for_ptb(tmp_path, monkeypatch):
    www = tmp_path / "mirror"
    www.mkdir()
    digests = {}
    for split in ("train", "valid", "test"):
        data = f"a {split} <unk> N\n".encode()
        (www / f"ptb.{split}.txt").write_bytes(data)
        digests[f"ptb.{split}.txt"] = sha256(data)
    pin(monkeypatch, "ptb", **digests)
    monkeypatch.setenv(download.ENV_URL, www.as_uri())
    splits = load_splits("ptb", cache_dir=str(tmp_path / "c"))
    assert splits == {s: f"a {s} <unk> N\n" for s in ("train", "valid", "test")}


def wikitext_zip(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"wikitext-2/wiki.{split}.tokens", f" = {split} = \n\n 1 @,@ 000 <unk> \n")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_wikitext_zip_is_read_in_place(tmp_path, monkeypatch):
    data = wikitext_zip(tmp_path / "wikitext-2-v1.zip")
    pin(monkeypatch, "wikitext-2", **{"wikitext-2-v1.zip": sha256(data)})
    splits = load_splits("wikitext-2", cache_dir=str(tmp_path / "c"), url_override=tmp_path.as_uri())
    assert splits["valid"] == " = valid = \n\n 1 @,@ 000 <unk> \n"


@pytest.mark.parametrize("members_ok", [True, False])
def test_repacked_wikitext_zip_passes_on_its_member_hashes(tmp_path, monkeypatch, members_ok):
    wikitext_zip(tmp_path / "wikitext-2-v1.zip")  # its zip MD5 is not the published one

    def sha1(split):
        return hashlib.sha1(f" = {split} = \n\n 1 @,@ 000 <unk> \n".encode() if members_ok else b"").hexdigest()

    members = tuple((f"wikitext-2/wiki.{s}.tokens", sha1(s)) for s in ("train", "valid", "test"))
    monkeypatch.setitem(SOURCES, "wikitext-2", (replace(SOURCES["wikitext-2"][0], members=members),))

    def run():
        return load_splits("wikitext-2", cache_dir=str(tmp_path / "c"), url_override=tmp_path.as_uri())

    if members_ok:
        assert run()["test"].startswith(" = test = ") and run() == run()  # and again from the cache
    else:
        with pytest.raises(DataError, match="checksum mismatch"):
            run()


def test_checksum_mismatch_removes_the_download(server, tmp_path, monkeypatch):
    base, www, _ = server
    (www / "input.txt").write_bytes(TEXT)
    pin(monkeypatch, "tiny-shakespeare", **{"input.txt": sha256(b"something else")})
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        load_splits("tiny-shakespeare", cache_dir=str(cache), url_override=base)
    msg = str(err.value)
    assert "\n" not in msg and "checksum mismatch" in msg and sha256(TEXT) in msg and "removed" in msg
    assert cache_files(cache) == []


def test_corrupt_cached_file_is_reported_and_removed(tmp_path, monkeypatch):
    pin(monkeypatch, "tiny-shakespeare", **{"input.txt": sha256(TEXT)})
    bad = tmp_path / "tiny-shakespeare" / "input.txt"
    bad.parent.mkdir()
    bad.write_bytes(TEXT[:-5])  # a truncated copy
    with pytest.raises(DataError) as err:
        load_splits("tiny-shakespeare", cache_dir=str(tmp_path))
    assert "fails its sha256 check" in str(err.value) and not bad.exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("corpus", ["tiny-shakespeare", "wikitext-2", "ptb"])
def test_no_network_gives_one_line_with_the_manual_alternative(tmp_path, corpus):
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        load_splits(corpus, cache_dir=str(cache), url_override=f"http://127.0.0.1:{closed_port()}")
    msg = str(err.value)
    rf = SOURCES[corpus][0]
    assert "\n" not in msg and "cannot download" in msg and "no network?" in msg
    assert rf.url in msg and str(cache / corpus / rf.name) in msg and "`corpus`" in msg
    assert cache_files(cache) == []


def test_http_error_is_a_data_error(server, tmp_path):
    base, _, _ = server  # serves nothing: 404
    with pytest.raises(DataError, match="HTTP 404 File not found"):
        load_splits("tiny-shakespeare", cache_dir=str(tmp_path / "c"), url_override=base)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(download.ENV_CACHE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pyjlode"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "pyjlode"
    monkeypatch.setenv(download.ENV_CACHE, str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"


@pytest.mark.parametrize("rf", [rf for files in SOURCES.values() for rf in files], ids=lambda rf: rf.name)
def test_published_checksums_are_well_formed(rf: RemoteFile):
    assert rf.url.startswith("https://") and rf.url.endswith(rf.name)
    assert len(rf.digest) == 2 * hashlib.new(rf.algo).digest_size
    int(rf.digest, 16)


def test_unwritable_cache_dir(tmp_path, monkeypatch):
    pin(monkeypatch, "tiny-shakespeare")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="`cache_dir`"):
        load_splits("tiny-shakespeare", cache_dir=str(blocker), url_override=tmp_path.as_uri())
    assert os.path.isfile(blocker)
