"""Fashion-MNIST: find, download, verify and read the four IDX files.

An explicit ``data_dir`` is the only place looked at (missing, empty or incomplete is an
error). Without one: ``$CHAINRULE_DATA``, then the Debian package location, then the user
cache; if none has all four files they are downloaded into the cache (size-capped, with an
overall deadline) and checked against the published MD5 checksums. Every file is validated
(magic number, dimensions, length, label range, content digest): a truncated, corrupt or
mismatched file raises :class:`DataError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from chainrule.core.errors import DataError
from chainrule.data.io import atomic_write

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class _FileSpec:
    name: str
    magic: int  # 0x0803 images (3 dims), 0x0801 labels (1 dim)
    shape: tuple[int, ...]
    md5_gz: str  # published checksum of the official .gz download
    sha256: str  # digest of the decompressed IDX content


FILES = {
    "train_images": _FileSpec(
        "train-images-idx3-ubyte",
        0x0803,
        (60000, 28, 28),
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": _FileSpec(
        "train-labels-idx1-ubyte",
        0x0801,
        (60000,),
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": _FileSpec(
        "t10k-images-idx3-ubyte",
        0x0803,
        (10000, 28, 28),
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": _FileSpec(
        "t10k-labels-idx1-ubyte",
        0x0801,
        (10000,),
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}


@dataclass
class FashionMNIST:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "chainrule" / "fashion-mnist"


def _find(directory: Path, spec: _FileSpec) -> Path | None:
    for candidate in (directory / (spec.name + ".gz"), directory / spec.name):
        if candidate.is_file():
            return candidate
    return None


def candidate_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    if os.environ.get("CHAINRULE_DATA"):
        dirs.append(Path(os.environ["CHAINRULE_DATA"]))
    dirs += [DEBIAN_DIR, cache_dir()]
    return dirs


def check_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """An explicit data folder must hold all four files (a cheap check, before any reading)."""
    directory = Path(data_dir)
    if not directory.is_dir():
        raise DataError(f"--data-dir {data_dir}: no such directory")
    found = {key: _find(directory, spec) for key, spec in FILES.items()}
    missing = [FILES[k].name for k, p in found.items() if p is None]
    if len(missing) == len(FILES):
        raise DataError(
            f"--data-dir {data_dir}: holds none of the Fashion-MNIST files ({', '.join(missing)}, .gz or raw)"
        )
    if missing:
        raise DataError(f"{directory}: incomplete Fashion-MNIST, missing {', '.join(missing)}")
    return directory


MAX_IDX_BYTES = 1 << 30  # a file without a spec may declare at most this much data


def read_idx(path: str | os.PathLike[str], spec: _FileSpec | None = None, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read one IDX file (gzipped or raw), validating header, length and (if known) content.

    Streaming: the header is read and checked first (magic, dimensions, against ``spec`` if
    given, and the declared size against ``max_bytes`` and, for a raw file, the file's real
    size); then exactly the declared number of bytes is read (inflated) into the result, and
    one more byte is asked for to detect trailing data. Nothing past that is ever decompressed,
    so a gzip bomb costs at most the declared size in memory and time.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: only {len(head)} bytes, too short for an IDX header (truncated)")
            ndim = head[3]
            if head[0:2] != b"\x00\x00" or head[2] != 0x08 or not 1 <= ndim <= 4:
                raise DataError(f"{path}: bad IDX magic number {head.hex()} (expected 0000080N); not an IDX file")
            if spec is not None and (0x0800 | ndim) != spec.magic:
                raise DataError(f"{path}: has {ndim} dimensions, expected {len(spec.shape)} for {spec.name}")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: header declares {ndim} dimensions but the file ends inside the header")
            dims = struct.unpack(">" + "I" * ndim, dims_raw)
            if spec is not None and tuple(dims) != spec.shape:
                raise DataError(
                    f"{path}: holds shape {tuple(dims)}, expected {spec.shape} for {spec.name} (mismatched file?)"
                )
            count = 1
            for d in dims:
                count *= d
            header_len = 4 + 4 * ndim
            if count > max_bytes:
                raise DataError(
                    f"{path}: header declares shape {tuple(dims)}, {count} bytes, over the {max_bytes} limit"
                )
            if path.suffix != ".gz":
                size = os.fstat(f.fileno()).st_size
                if size != header_len + count:
                    raise DataError(
                        f"{path}: {size} bytes, expected {header_len + count} for shape {tuple(dims)} "
                        f"({'truncated' if size < header_len + count else 'trailing bytes'})"
                    )
            data = np.empty(count, dtype=np.uint8)
            view = memoryview(data.data)
            got = 0
            while got < count:
                n = f.readinto(view[got : got + (1 << 20)])  # in slices: no second full-size buffer
                if not n:
                    break
                got += n
            if got != count:
                raise DataError(
                    f"{path}: {header_len + got} bytes, expected {header_len + count} "
                    f"for shape {tuple(dims)} (truncated)"
                )
            if f.read(1):
                raise DataError(f"{path}: trailing bytes after the {header_len + count} of shape {tuple(dims)}")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decompress/read ({exc}); the file is truncated or corrupt") from exc
    if spec is not None:
        h = hashlib.sha256(head + dims_raw)
        h.update(view)
        digest = h.hexdigest()
        if digest != spec.sha256:
            raise DataError(
                f"{path}: content checksum {digest[:16]}... differs from the Fashion-MNIST release (corrupt)"
            )
    data = data.reshape(dims)
    if ndim == 1 and data.size and data.max() > 9:
        raise DataError(f"{path}: label {int(data.max())} out of range 0..9")
    return data


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


MAX_DOWNLOAD_BYTES = 64 << 20  # per file; the largest Fashion-MNIST file is 26 MB
DOWNLOAD_DEADLINE = 900.0  # seconds for all four files together


def download(
    target: Path,
    base_url: str | None = None,
    timeout: float = 60.0,
    md5s: dict[str, str] | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    deadline: float = DOWNLOAD_DEADLINE,
    progress: Callable[[str, int | None], Any] | None = None,
) -> None:
    """Download the four .gz files into ``target`` and verify them against the published MD5s
    (``md5s`` maps file name to checksum, for mirrors that recompress the files).

    Each file is capped at ``max_bytes`` (checked against Content-Length first, then while
    reading) and all four must arrive within ``deadline`` seconds; ``timeout`` bounds each
    wait for the server. A file is written through the atomic writer under a unique temporary
    name and renamed into place only once its MD5 matches, so processes downloading into
    one cache at once do not disturb each other and a failed download leaves nothing behind.
    ``progress(description, total_bytes)``, if given, is called once per file and may return a
    bar (anything with ``update(n)`` and ``close()``, e.g. a tqdm bar) that is fed the bytes read.
    """
    import http.client  # the network stack (with ssl and email) is loaded only to download:
    import urllib.request  # ~3 MB of a training script's memory that only a first run needs

    base_url = base_url or os.environ.get("CHAINRULE_FASHION_MNIST_URL") or OFFICIAL_URL
    target.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for spec in FILES.values():
        dest = target / (spec.name + ".gz")
        want = (md5s or {}).get(spec.name + ".gz", spec.md5_gz)
        if dest.is_file() and _md5(dest) == want:
            continue
        url = base_url.rstrip("/") + "/" + spec.name + ".gz"

        def fetch(out: BinaryIO, url: str = url, want: str = want) -> None:
            h = hashlib.md5()
            total = 0
            bar = None
            try:
                left = deadline - (time.monotonic() - start)
                if left <= 0:
                    raise DataError(f"download of {url}: the {deadline:g} s deadline for the download passed")
                with urllib.request.urlopen(url, timeout=min(timeout, left)) as response:
                    length = response.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) > max_bytes:
                        raise DataError(f"download of {url}: {int(length)} bytes announced, over the {max_bytes} limit")
                    if progress is not None:
                        size = int(length) if length.isdigit() else None
                        bar = progress(f"downloading {url.rsplit('/', 1)[-1]}", size)
                    while block := response.read1(1 << 16):
                        total += len(block)
                        if total > max_bytes:
                            raise DataError(f"download of {url}: more than the {max_bytes} bytes allowed; stopped")
                        if time.monotonic() - start > deadline:
                            raise DataError(
                                f"download of {url}: the {deadline:g} s deadline passed after {total} bytes; stopped"
                            )
                        h.update(block)
                        out.write(block)
                        if bar is not None:
                            bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise DataError(f"download of {url} failed: {exc}") from exc
            finally:
                if bar is not None:
                    bar.close()
            got = h.hexdigest()
            if got != want:
                raise DataError(f"{url}: MD5 {got} does not match the published {want}; file discarded")

        atomic_write(dest, fetch)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download_missing: bool = True,
    base_url: str | None = None,
    md5s: dict[str, str] | None = None,
    search_system: bool = True,
    progress: Callable[[str, int | None], Any] | None = None,
) -> FashionMNIST:
    """Load Fashion-MNIST as uint8 images (N, 28, 28) and uint8 labels (N,).

    An explicit ``data_dir`` is the only place looked at: a missing, empty or incomplete
    folder is an error, never a silent fallback to another copy. ``source`` says which folder
    the data came from. ``progress`` is passed to :func:`download` (a bar per file fetched)."""
    if data_dir is not None:
        directory = check_data_dir(data_dir)
        found = {key: _find(directory, spec) for key, spec in FILES.items()}
        arrays = {key: read_idx(path, FILES[key]) for key, path in found.items() if path is not None}
        return FashionMNIST(**arrays, source=directory)
    dirs = candidate_dirs(None)
    if not search_system:
        dirs = [d for d in dirs if d != DEBIAN_DIR]
    for directory in dirs:
        found = {key: _find(directory, spec) for key, spec in FILES.items()}
        if all(found.values()):
            arrays = {key: read_idx(path, FILES[key]) for key, path in found.items() if path is not None}
            return FashionMNIST(**arrays, source=directory)
    searched = ", ".join(str(d) for d in dirs)
    if not download_missing:
        raise DataError(f"Fashion-MNIST not found in: {searched} (install dataset-fashion-mnist or pass --data-dir)")
    target = cache_dir()
    download(target, base_url, md5s=md5s, progress=progress)
    arrays = {key: read_idx(target / (spec.name + ".gz"), spec) for key, spec in FILES.items()}
    return FashionMNIST(**arrays, source=target)
