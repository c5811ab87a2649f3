"""Downloading public data sets into a local cache: resumable, checksum-verified, safely unpacked.

`download(name)` fetches the files of one of `REMOTE`'s data sets ("mnist", "fashion-mnist",
"cifar10") into `cache_root() / name` and returns the folder a reader takes:

- **Resumable.** Bytes go to `FILE.part`; a later run asks the server for the rest with an HTTP
  `Range` request and appends to it (a server that ignores `Range` sends the whole file again).
- **Verified.** A finished `.part` is renamed to `FILE` only when its MD5 matches the published
  one (MD5 is what these data sets publish; it guards against corruption, not tampering). A
  mismatching file is moved aside to `FILE.corrupt`, never silently deleted, and the error says so.
  Because only verified files get their final name, a file present under it is trusted.
- **Clear when offline.** A host that cannot be reached gives one message naming the host, the
  file and the folder to put it into by hand.
- **Safe unpacking.** Archives are unpacked member by member into a temporary folder; absolute
  paths, `..`, links and special files are refused (no path traversal), and the data folder
  appears under its final name only once complete.

The cache is `cache_dir` when given, else the environment variable `GENLAB_CACHE`, else
`~/.cache/genlab`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from genlab.core.errors import DataError

try:  # POSIX advisory locks keep two processes from appending to one .part file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CACHE_ENV = "GENLAB_CACHE"
DEFAULT_CACHE = Path("~/.cache/genlab")
CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name on the servers (and in the cache) and its MD5."""

    name: str
    md5: str


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable data set.

    Args:
        mirrors: base URLs tried in order; a file's URL is the base followed by its name.
        files: the files to fetch.
        folder: the folder, inside the data set's cache folder, that readers are given: "" for
            the cache folder itself, or the folder an archive unpacks to.
        archive: the name of the file to unpack into `folder` ("" when nothing is unpacked).
        homepage: where the data set is described (for messages).
    """

    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    folder: str = ""
    archive: str = ""
    homepage: str = ""


# MD5 sums as published by the data sets' authors (and used by torchvision).
REMOTE: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": RemoteDataset(
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": RemoteDataset(
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        folder="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}


class _Unreachable(Exception):
    """The host could not be reached at all (no network, DNS failure, refused, timed out)."""

    def __init__(self, url: str, reason: object):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class _Refused(Exception):
    """The host answered, but did not serve the file (an HTTP error status, a missing file)."""

    def __init__(self, url: str, problem: str):
        super().__init__(f"{url}: {problem}")
        self.url = url


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The download cache: `cache_dir`, else $GENLAB_CACHE, else ~/.cache/genlab."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV, "")
    return Path(env).expanduser() if env else DEFAULT_CACHE.expanduser()


def _remote(name: str) -> RemoteDataset:
    if name not in REMOTE:
        raise DataError(f"no download for {name!r}; downloadable: {', '.join(sorted(REMOTE))}")
    return REMOTE[name]


def local_copy(name: str, cache_dir: str | Path | None = None) -> Path | None:
    """The data folder of `name` if it is complete in the cache, else None (nothing fetched)."""
    remote = _remote(name)
    root = cache_root(cache_dir) / name
    folder = root / remote.folder if remote.folder else root
    if remote.archive:
        return folder if folder.is_dir() else None
    return folder if all((root / f.name).is_file() for f in remote.files) else None


def download(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Fetch data set `name` into the cache (unless already there) and return its data folder.

    Args:
        name: one of `REMOTE`: "mnist", "fashion-mnist", "cifar10".
        cache_dir: the cache folder; default $GENLAB_CACHE or ~/.cache/genlab. Files go to
            `cache_dir / name`.
        base_url: fetch every file from this base URL instead of the published mirrors (a
            local mirror, or a test server).
        timeout: seconds to wait for a server before giving up on it.

    Returns:
        The folder to read: `cache_dir/name` holding the four IDX files for the MNIST sets,
        `cache_dir/cifar10/cifar-10-batches-py` for CIFAR-10.

    Raises:
        DataError: offline, every mirror failed, a checksum mismatch (the file is kept as
            `.corrupt`), an interrupted transfer (the `.part` file is kept for resuming), or an
            unsafe or corrupt archive. Each message says how to go on.
    """
    remote = _remote(name)
    done = local_copy(name, cache_dir)
    if done is not None:
        return done
    root = cache_root(cache_dir) / name
    mirrors = (base_url,) if base_url else remote.mirrors
    for file in remote.files:
        _fetch_from_mirrors(mirrors, file, root / file.name, timeout)
    if remote.archive:
        safe_extract_tar(root / remote.archive, root, remote.folder)
        return root / remote.folder
    return root


def _join(base: str, name: str) -> str:
    return base if base.endswith(name) else base.rstrip("/") + "/" + name


def _fetch_from_mirrors(
    mirrors: tuple[str, ...], file: RemoteFile, target: Path, timeout: float
) -> Path:
    """Fetch `file` from the first mirror that serves it (resuming any `.part`)."""
    if target.is_file():
        return target
    failures: list[Exception] = []
    for base in mirrors:
        try:
            return fetch(_join(base, file.name), target, file.md5, timeout=timeout)
        except (_Unreachable, _Refused) as e:
            failures.append(e)
    urls = " or ".join(_join(base, file.name) for base in mirrors)
    manual = (
        f"download {file.name} manually (from {urls}) into {target.parent}/ and run again "
        "(its MD5 is checked)"
    )
    if all(isinstance(e, _Unreachable) for e in failures):
        hosts = ", ".join(dict.fromkeys(urlsplit(e.url).netloc for e in failures))
        reason = failures[0].reason
        raise DataError(f"cannot reach {hosts}: you seem to be offline ({reason}); {manual}")
    tried = "; ".join(str(e) for e in failures)
    raise DataError(f"could not download {file.name} ({tried}); {manual}")


def fetch(url: str, target: Path, md5: str, *, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download `url` to `target`, resuming `target.part`, and verify its MD5.

    Args:
        url: the file's URL (http, https or file).
        target: where the verified file ends up.
        md5: the published MD5, lower-case hex.
        timeout: seconds to wait for the server.

    Returns:
        `target`. An existing `target` is returned untouched: only verified files get its name.

    Raises:
        DataError: checksum mismatch (file moved to `target.corrupt`), interrupted transfer
            (`target.part` kept for resuming), another process downloading the same file.
        _Unreachable, _Refused: for the caller to try another mirror.
    """
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with open(part, "ab") as out:
            _lock(out, part)
            _receive(url, out, part, timeout)
    except BaseException:
        # Keep received bytes for resuming, but no empty leftovers of a failed first attempt.
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        raise
    digest = file_md5(part)
    if digest != md5.lower():
        corrupt = target.with_name(target.name + ".corrupt")
        os.replace(part, corrupt)
        raise DataError(
            f"{target.name} from {url} does not match its published checksum (MD5 expected "
            f"{md5}, got {digest}): the file was moved aside to {corrupt}. Run again to "
            "download it afresh; if it fails again the mirror serves a different file, so "
            "fetch it from another source into the same folder"
        )
    os.replace(part, target)
    return target


def _lock(out, part: Path) -> None:
    if fcntl is None:  # pragma: no cover - Windows
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DataError(
            f"another process is downloading into {part} right now: wait for it to finish, "
            "then run again"
        ) from None


def _receive(url: str, out, part: Path, timeout: float) -> None:
    """Append the rest of `url` to the open `.part` file `out`."""
    offset = os.fstat(out.fileno()).st_size
    headers = {"User-Agent": "genlab"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and offset:
            # Nothing left to send: the .part already holds the whole file; the checksum decides.
            return
        raise _Refused(url, f"HTTP {e.code}") from None
    except URLError as e:
        if urlsplit(url).scheme == "file":
            raise _Refused(url, f"cannot read it: {e.reason}") from None
        raise _Unreachable(url, e.reason) from None
    except (OSError, http.client.HTTPException) as e:
        raise _Unreachable(url, e) from None
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if offset and status != 206:
            # The server ignored the Range header and sends the whole file: start over.
            out.truncate(0)
            offset = 0
        elif offset:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                out.truncate(0)
                raise DataError(
                    f"{url} answered a resume request with a different range "
                    f"({response.headers.get('Content-Range')!r}, asked from byte {offset}); "
                    "the partial file was emptied: run again to download it from the start"
                )
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = offset
        try:
            with tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name[: -len(".part")],
                disable=None,
                leave=False,
            ) as progress:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            out.flush()
            raise _interrupted(url, part, received, total, e) from None
        out.flush()
        if total is not None and received < total:
            raise _interrupted(url, part, received, total, "connection closed early")


def _content_range_start(value: str) -> int | None:
    """The first byte of a `Content-Range: bytes START-END/TOTAL` header, or None."""
    unit, _, spec = value.strip().partition(" ")
    first = spec.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _interrupted(url: str, part: Path, received: int, total: int | None, reason: object):
    of_total = f" of {total:,}" if total is not None else ""
    return DataError(
        f"the download of {url} stopped after {received:,}{of_total} bytes ({reason}); run "
        f"again to resume it: the bytes received so far are kept in {part}"
    )


def file_md5(path: Path) -> str:
    """MD5 of a file, lower-case hex (an integrity check: the data sets publish MD5)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _unsafe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        not name
        or path.is_absolute()
        or ".." in path.parts
        or "\\" in name
        or ":" in (path.parts[0] if path.parts else "")
    )


def safe_extract_tar(archive: Path, dest: Path, folder: str) -> Path:
    """Unpack `folder` from a tar archive into `dest`, refusing anything that could escape it.

    Only plain files and folders are written; an absolute path, a `..` component, a link or a
    device file in the archive aborts with a DataError before anything reaches `dest`. Members
    are unpacked into a temporary folder inside `dest` and `folder` is renamed into place when
    complete, so an interrupted unpacking never leaves a half-filled data folder.

    Args:
        archive: a tar file, optionally gzip/bz2/xz-compressed.
        dest: the folder to unpack into.
        folder: the top-level folder of the archive that readers need.

    Returns:
        `dest / folder`.
    """
    final = dest / folder
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".unpack-"))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if _unsafe_member(member.name):
                        raise DataError(
                            f"{archive} holds a member with an unsafe path {member.name!r} "
                            "(absolute or leading outside the folder); nothing was unpacked. "
                            "The archive is not the published one: delete it and download again"
                        )
                    target = staging / member.name
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        source = tar.extractfile(member)
                        with source, open(target, "wb") as out:
                            shutil.copyfileobj(source, out, CHUNK_BYTES)
                    else:
                        raise DataError(
                            f"{archive} holds a link or special file {member.name!r}; nothing "
                            "was unpacked. The archive is not the published one: delete it and "
                            "download again"
                        )
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise DataError(
                f"{archive} is corrupt or truncated ({e}): delete it and run again to download it "
                "afresh"
            ) from None
        unpacked = staging / folder
        if not unpacked.is_dir():
            raise DataError(
                f"{archive} has no folder {folder!r}: it is not the expected archive; delete it "
                "and download again"
            )
        if not final.exists():
            os.replace(unpacked, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
