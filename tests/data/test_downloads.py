"""Downloads from a local HTTP server on 127.0.0.1: resume, checksums, offline, safe unpacking."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from genlab.core.errors import DataError
from genlab.data import downloads, load
from genlab.data.downloads import RemoteFile, cache_root, download, fetch, safe_extract_tar
from tests.data.test_image_files import idx_arrays, idx_bytes, write_cifar_folder

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class RangeServer:
    """A tiny file server on 127.0.0.1 that honours `Range: bytes=N-` (unlike http.server's).

    Attributes set by tests: `files` (URL path -> bytes), `honour_range`, `cut_after` (send the
    full Content-Length but close after this many body bytes, once), `requests` (the Range
    header of each GET, or None).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.cut_after: int | None = None
        self.requests: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.headers.get("Range"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                wanted = self.headers.get("Range", "")
                if server.honour_range and wanted.startswith("bytes="):
                    start = int(wanted[len("bytes=") :].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                part = body[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(part)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if server.cut_after is not None:
                    part, server.cut_after = part[: server.cut_after], None
                    self.wfile.write(part)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = RangeServer()
    yield s
    s.close()


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening on it (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_downloads_and_verifies(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    target = tmp_path / "cache" / "f.bin"
    assert fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5) == target
    assert target.read_bytes() == PAYLOAD
    assert not target.with_name("f.bin.part").exists()
    assert server.requests == [None]
    fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)  # verified file: no request
    assert server.requests == [None]


def test_fetch_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    target = tmp_path / "f.bin"
    target.with_name("f.bin.part").write_bytes(PAYLOAD[:3000])
    fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)
    assert server.requests == ["bytes=3000-"]
    assert target.read_bytes() == PAYLOAD

    # A complete .part (the server answers 416) is verified and kept.
    other = tmp_path / "g.bin"
    server.files["/g.bin"] = PAYLOAD
    other.with_name("g.bin.part").write_bytes(PAYLOAD)
    fetch(f"{server.url}/g.bin", other, md5(PAYLOAD), timeout=5)
    assert other.read_bytes() == PAYLOAD


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.honour_range = False
    target = tmp_path / "f.bin"
    target.with_name("f.bin.part").write_bytes(b"stale bytes from elsewhere")
    fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)
    assert target.read_bytes() == PAYLOAD


def test_an_interrupted_download_keeps_its_part_and_resumes(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after = 4000
    target = tmp_path / "f.bin"
    part = target.with_name("f.bin.part")
    with pytest.raises(
        DataError, match=r"stopped after 4,000 of 10,240 bytes.*run again to resume"
    ):
        fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)
    assert part.read_bytes() == PAYLOAD[:4000] and not target.exists()
    fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)
    assert server.requests[-1] == "bytes=4000-"
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_checksum_mismatch_moves_the_file_aside(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    target = tmp_path / "f.bin"
    with pytest.raises(DataError, match=r"does not match its published checksum.*f\.bin\.corrupt"):
        fetch(f"{server.url}/f.bin", target, "0" * 32, timeout=5)
    assert target.with_name("f.bin.corrupt").read_bytes() == PAYLOAD
    assert not target.exists() and not target.with_name("f.bin.part").exists()
    # A retry downloads afresh (and here succeeds with the right checksum).
    fetch(f"{server.url}/f.bin", target, md5(PAYLOAD), timeout=5)
    assert target.read_bytes() == PAYLOAD


def test_file_urls_work(tmp_path):
    source = tmp_path / "mirror" / "f.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    target = tmp_path / "cache" / "f.bin"
    fetch(source.as_uri(), target, md5(PAYLOAD))
    assert target.read_bytes() == PAYLOAD


def _tiny_remote(monkeypatch, name: str, mirror: str, files: dict[str, bytes], **fields):
    remote = replace(
        downloads.REMOTE[name],
        mirrors=(mirror,),
        files=tuple(RemoteFile(n, md5(data)) for n, data in files.items()),
        **fields,
    )
    monkeypatch.setitem(downloads.REMOTE, name, remote)


def _idx_files() -> dict[str, bytes]:
    return {f"{base}.gz": gzip.compress(idx_bytes(v)) for base, v in idx_arrays().items()}


def test_offline_says_so_and_where_to_put_the_file(tmp_path, closed_port, monkeypatch):
    _tiny_remote(monkeypatch, "mnist", f"http://127.0.0.1:{closed_port}/", _idx_files())
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as error:
        download("mnist", cache, timeout=5)
    message = str(error.value)
    assert f"cannot reach 127.0.0.1:{closed_port}: you seem to be offline" in message
    assert "train-images-idx3-ubyte.gz manually" in message and str(cache / "mnist") in message
    assert not list((cache / "mnist").glob("*.part"))  # no empty leftovers


def test_http_errors_are_reported_per_mirror(server, tmp_path, monkeypatch):
    _tiny_remote(monkeypatch, "mnist", f"{server.url}/missing/", _idx_files())
    with pytest.raises(
        DataError, match=r"could not download train-images-idx3-ubyte\.gz.*HTTP 404"
    ):
        download("mnist", tmp_path, timeout=5)


def test_mnist_source_downloads_once_then_reads_the_cache(server, tmp_path, monkeypatch):
    files = _idx_files()
    server.files.update({f"/mnist/{n}": data for n, data in files.items()})
    _tiny_remote(monkeypatch, "mnist", f"{server.url}/mnist/", files)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="not in the cache .* download=false"):
        load("mnist", download=False, cache_dir=str(cache))
    train = load("mnist", "train", cache_dir=str(cache))
    assert len(server.requests) == 4
    assert train.x.shape == (12, 1, 4, 4) and train.spec.name == "mnist"
    assert train.info["class_names"] == [str(d) for d in range(10)]
    expected = torch.from_numpy(idx_arrays()["train-images-idx3-ubyte"] / 255.0).float()
    assert torch.equal(train.x[:, 0], expected)
    test = load("mnist", "test", cache_dir=str(cache), download=False)
    assert len(test) == 5 and len(server.requests) == 4

    monkeypatch.setenv("GENLAB_CACHE", str(cache))
    assert cache_root() == cache
    assert len(load("mnist", "train", limit=2)) == 2 and len(server.requests) == 4


def test_cache_root_default(monkeypatch, tmp_path):
    monkeypatch.delenv("GENLAB_CACHE", raising=False)
    assert cache_root() == Path("~/.cache/genlab").expanduser()
    assert cache_root(str(tmp_path)) == tmp_path
    with pytest.raises(DataError, match="no download for 'svhn'"):
        download("svhn", tmp_path)


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def test_cifar10_downloads_and_unpacks(server, tmp_path, monkeypatch):
    folder = tmp_path / "built" / "cifar-10-batches-py"
    write_cifar_folder(folder)
    archive = _tar_gz({f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in folder.iterdir()})
    server.files["/cifar-10-python.tar.gz"] = archive
    _tiny_remote(monkeypatch, "cifar10", f"{server.url}/", {"cifar-10-python.tar.gz": archive})
    cache = tmp_path / "cache"
    data = load("cifar10", "test", cache_dir=str(cache))
    assert data.x.shape == (4, 3, 32, 32)
    assert (cache / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not list((cache / "cifar10").glob(".unpack-*"))
    assert len(load("cifar10", "train", cache_dir=str(cache))) == 15
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "members, links, problem",
    [
        ({"data/ok": b"1", "../escape": b"x"}, None, "unsafe path '../escape'"),
        ({"/etc/evil": b"x"}, None, "unsafe path '/etc/evil'"),
        ({"data/a/../../escape": b"x"}, None, "unsafe path"),
        ({"data/ok": b"1"}, {"data/link": "/etc/passwd"}, "link or special file 'data/link'"),
    ],
)
def test_safe_extract_refuses_escapes(tmp_path, members, links, problem):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz(members, links))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=problem):
        safe_extract_tar(archive, dest, "data")
    assert not (tmp_path / "escape").exists()
    assert not (dest / "data").exists() and list(dest.iterdir()) == []


def test_safe_extract_corrupt_or_wrong_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"data/x": b"1"})[:20])
    with pytest.raises(DataError, match="corrupt or truncated"):
        safe_extract_tar(archive, tmp_path / "dest", "data")
    archive.write_bytes(_tar_gz({"other/x": b"1"}))
    with pytest.raises(DataError, match="has no folder 'data'"):
        safe_extract_tar(archive, tmp_path / "dest", "data")
    archive.write_bytes(_tar_gz({"data/x": b"1"}))
    assert (safe_extract_tar(archive, tmp_path / "dest", "data") / "x").read_bytes() == b"1"
