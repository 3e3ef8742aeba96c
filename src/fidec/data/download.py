"""``fidec data download``: official datasets fetched on request (never automatically), verified, atomic.

- OGBench: the files and URL of ``ogbench.download_datasets`` (``ogbench/utils.py``:
  ``<DATASET_URL>/<name>.npz`` and ``<name>-val.npz``, ``DATASET_URL =
  https://rail.eecs.berkeley.edu/datasets/ogbench``), saved into
  the folder fidec loads from (``--dataset-dir``, ``$FIDEC_DATA_DIR`` or ``~/.ogbench/data``). fidec does
  the transfer itself, so that a file appears complete and verified or not at all (OGBench's own loop
  renames an unverified ``.tmp``). A mirror: ``--url`` or ``$FIDEC_OGBENCH_URL``, any ``http(s)://`` or
  ``file://`` folder with the same file names.
- Minari (D4RL tasks map to ``D4RL/...`` ids): by default Minari's own ``minari.download_dataset`` (remote
  ``$MINARI_REMOTE``, or ``--url hf://<org>`` / ``gcp://<bucket>``), staged in a hidden folder of Minari's
  root and renamed into place when complete. A plain mirror (``--url`` or ``$FIDEC_MINARI_URL`` with an
  ``http(s)://`` or ``file://`` address) holds Minari's local layout, ``<url>/<id>/data/metadata.json`` and
  ``<url>/<id>/data/main_data.hdf5``, and is fetched by fidec.

Checks, before a file gets its final name: the received size against ``Content-Length``; the SHA-256 of
every file against ``<url>/SHA256SUMS`` when a mirror has one (``sha256sum`` output, paths relative to
``<url>``; OGBench's own server publishes none and is not asked); for OGBench ``.npz`` files, the CRC-32
of every array (the zip format's own checksum) and OGBench's layout; for Minari, ``metadata.json`` parses
and ``main_data.hdf5`` opens.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
from ogbench.utils import DATASET_URL as OGBENCH_DATASET_URL
from tqdm.auto import tqdm

from fidec.data.d4rl import MINARI_DATASET_IDS
from fidec.data.errors import DatasetError
from fidec.data.npz import check_ogbench_layout
from fidec.data.paths import (
    MINARI_FILES,
    data_dir,
    minari_data_folder,
    minari_main_data,
    minari_metadata,
    minari_root,
    ogbench_files,
)
from fidec.envs.registry import UnknownTaskError, parse_dataset_name, parse_task
from fidec.errors import UserError
from fidec.files import atomic_directory, atomic_path, fsync_dir

OGBENCH_URL_ENV = "FIDEC_OGBENCH_URL"
MINARI_URL_ENV = "FIDEC_MINARI_URL"
CHECKSUM_FILE = "SHA256SUMS"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
PLAIN_SCHEMES = ("http", "https", "file")


class DownloadError(UserError, RuntimeError):
    """A download that failed or did not verify; the message names the address, the cause and what to do."""


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did: the dataset, where its files are, and how they were verified."""

    source: str  # "ogbench" or "minari"
    name: str  # OGBench dataset name or Minari dataset id
    paths: tuple[Path, ...]
    already_present: bool = False
    verified_by: str = ""
    sha256: dict[str, str] = field(default_factory=dict)


def resolve(name: str) -> tuple[str, str]:
    """("ogbench", dataset name) or ("minari", dataset id) for a task name, a dataset name or a Minari id."""
    try:
        spec = parse_task(name)
    except UnknownTaskError:
        spec = None
    if spec is not None:
        if spec.benchmark == "ogbench":
            return "ogbench", spec.dataset_name
        return "minari", MINARI_DATASET_IDS[spec.name]
    if "/" in name and "://" not in name:
        return "minari", name.strip("/")
    try:
        parse_dataset_name(name)
    except UnknownTaskError as error:
        raise UnknownTaskError(
            f"Cannot download {name!r}: give an OGBench task or dataset name (cube-single-play-singletask-"
            "task1-v0, cube-single-play-v0), a D4RL task name (antmaze-umaze-v2) or a Minari dataset id "
            "(D4RL/antmaze/umaze-v1)."
        ) from error
    return "ogbench", name


def download(
    name: str,
    dataset_dir: str | os.PathLike | None = None,
    url: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DownloadResult:
    """Fetch the dataset of ``name`` (see :func:`resolve`) into the folder fidec loads it from."""
    source, dataset = resolve(name)
    if source == "ogbench":
        base = url or os.environ.get(OGBENCH_URL_ENV) or OGBENCH_DATASET_URL
        return download_ogbench(dataset, data_dir(dataset_dir), base, overwrite, progress)
    return download_minari(dataset, url or os.environ.get(MINARI_URL_ENV), overwrite, progress)


# ------------------------------------------------------------------------------------------ transfers


def _join(base: str, relative: str) -> str:
    return f"{base.rstrip('/')}/{urllib.parse.quote(relative)}"


class _Missing(Exception):
    """The source answered that the file does not exist (HTTP 403/404/410, or no such file://)."""


def _open(url: str, missing_ok: bool = False):
    """The response for ``url``; failures as :class:`DownloadError` (``_Missing`` when ``missing_ok``)."""
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        error.close()
        if missing_ok and error.code in (403, 404, 410):
            raise _Missing(url) from error
        raise DownloadError(
            f"{url}: HTTP {error.code} {error.reason}. Check the dataset name and the address "
            f"(--url, ${OGBENCH_URL_ENV} / ${MINARI_URL_ENV})."
        ) from error
    except urllib.error.URLError as error:
        if missing_ok and isinstance(error.reason, FileNotFoundError):
            raise _Missing(url) from error
        raise _unreachable(url, error.reason) from error
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise _unreachable(url, f"{type(error).__name__}: {error}") from error


def _unreachable(url: str, reason: object) -> DownloadError:
    return DownloadError(
        f"cannot reach {url}: {reason}. Without network access, fetch the files on another machine and "
        "copy them here, or give a reachable mirror with --url."
    )


def read_checksums(base: str) -> dict[str, str] | None:
    """``{relative path: sha256}`` from ``<base>/SHA256SUMS``, or None when the source has no such file."""
    url = _join(base, CHECKSUM_FILE)
    try:
        with _open(url, missing_ok=True) as response:
            text = _read(response, url, 0, size=-1).decode(errors="replace")
    except _Missing:
        return None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, path = line.strip().partition(" ")
        path = path.strip().lstrip("*").removeprefix("./")
        if len(digest) != 64 or not path:
            raise DownloadError(
                f"{url}: line {number} is not '<sha256>  <file>' ({line[:80]!r}); regenerate it with sha256sum."
            )
        sums[path] = digest.lower()
    return sums


def _read(response, url: str, received: int, size: int = CHUNK_BYTES) -> bytes:
    """The next ``size`` bytes of ``response`` (all with -1); a broken connection as :class:`DownloadError`."""
    try:
        return response.read(size)
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(
            f"the transfer of {url} broke off after {received} bytes ({type(error).__name__}: {error}); "
            "nothing was saved. Run the command again."
        ) from error


def fetch(
    url: str,
    target: Path,
    expected_sha256: str | None,
    verify: Callable[[Path], None] = lambda path: None,
    progress: bool = True,
) -> str:
    """Stream ``url`` into ``target`` atomically and return its SHA-256.

    The data go to a temporary file beside ``target``; the received size is checked against
    ``Content-Length``, the digest against ``expected_sha256`` (when given), then ``verify(temporary)``
    runs; only then does the file take its final name. On any failure nothing is left behind.
    """
    digest = hashlib.sha256()
    with atomic_path(target) as temporary, _open(url) as response:
        expected_bytes = response.headers.get("Content-Length")
        expected_bytes = int(expected_bytes) if expected_bytes and expected_bytes.isdigit() else None
        bar = tqdm(
            total=expected_bytes,
            unit="B",
            unit_scale=True,
            desc=target.name,
            disable=not progress,
            leave=False,
        )
        received = 0
        try:
            with open(
                temporary, "wb"
            ) as stream:  # a write error (disk full) becomes a WriteError naming target
                while chunk := _read(response, url, received):
                    stream.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
        if expected_bytes is not None and received != expected_bytes:
            raise DownloadError(
                f"{url}: received {received} bytes of {expected_bytes}; the transfer was cut short and nothing "
                "was saved. Run the command again."
            )
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise DownloadError(
                f"{url}: SHA-256 {digest.hexdigest()} differs from {expected_sha256} in {CHECKSUM_FILE}: the "
                "file is damaged or the mirror is out of date; nothing was saved. Run the command again or fix "
                "the mirror."
            )
        verify(temporary)
    return digest.hexdigest()


def _expected(sums: dict[str, str] | None, relative: str, base: str) -> str | None:
    if sums is None:
        return None
    if relative not in sums:
        raise DownloadError(
            f"{_join(base, CHECKSUM_FILE)} lists no checksum for {relative}; add it (sha256sum) or remove the "
            "stale SHA256SUMS from the mirror."
        )
    return sums[relative]


# -------------------------------------------------------------------------------------------- OGBench


def verify_npz(url: str) -> Callable[[Path], None]:
    """A check of a downloaded ``.npz``: the CRC-32 of every array and OGBench's layout."""

    def check(path: Path) -> None:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as error:
            raise DownloadError(f"{url} is not a readable .npz ({error}); nothing was saved.") from error
        if bad is not None:
            raise DownloadError(
                f"{url}: the CRC-32 of {bad} does not match; the file is damaged; nothing was saved."
            )
        try:
            check_ogbench_layout(path)
        except DatasetError as error:
            raise DownloadError(f"{url} is not an OGBench dataset: {error}") from error

    return check


def download_ogbench(
    dataset_name: str, directory: Path, base_url: str, overwrite: bool = False, progress: bool = True
) -> DownloadResult:
    """``<dataset_name>.npz`` and ``-val.npz`` from ``base_url`` into ``directory`` (see the module docstring)."""
    train_path, val_path = ogbench_files(directory, dataset_name)
    paths = (train_path, val_path)
    if not overwrite and all(p.exists() for p in paths):
        return DownloadResult("ogbench", dataset_name, paths, already_present=True)
    official = base_url.rstrip("/") == OGBENCH_DATASET_URL.rstrip("/")
    sums = None if official else read_checksums(base_url)  # OGBench's server publishes no checksum file
    digests = {}
    for path in (val_path, train_path):  # the training file last: its presence marks a complete pair
        url = _join(base_url, path.name)
        digests[path.name] = fetch(url, path, _expected(sums, path.name, base_url), verify_npz(url), progress)
    verified = f"{CHECKSUM_FILE} and the CRC-32 of every array" if sums else "the CRC-32 of every array"
    return DownloadResult("ogbench", dataset_name, paths, verified_by=verified, sha256=digests)


# --------------------------------------------------------------------------------------------- Minari


def verify_minari_folder(folder: Path, source: str) -> None:
    """``data/metadata.json`` parses and ``data/main_data.hdf5`` opens (a Minari dataset in HDF5 format)."""
    try:
        json.loads(minari_metadata(minari_data_folder(folder)).read_text())
        with h5py.File(minari_main_data(minari_data_folder(folder)), "r") as file:
            if not any(key.startswith("episode_") for key in file):
                raise DownloadError(f"{source}: main_data.hdf5 holds no episode; nothing was saved.")
    except (OSError, ValueError) as error:
        if isinstance(error, UserError):
            raise
        raise DownloadError(
            f"{source} is not a complete Minari dataset ({type(error).__name__}: {error}); nothing was saved."
        ) from error


def download_minari(
    dataset_id: str, url: str | None = None, overwrite: bool = False, progress: bool = True
) -> DownloadResult:
    """The Minari dataset ``dataset_id`` into Minari's root (see the module docstring)."""
    target = minari_root() / dataset_id
    if not overwrite and minari_metadata(minari_data_folder(target)).exists():
        return DownloadResult("minari", dataset_id, (target,), already_present=True)
    if url is not None and urllib.parse.urlparse(url).scheme in PLAIN_SCHEMES:
        return _download_minari_mirror(dataset_id, url, target, progress)
    return _download_minari_remote(dataset_id, url, target)


def _download_minari_mirror(dataset_id: str, base: str, target: Path, progress: bool) -> DownloadResult:
    sums = read_checksums(base)
    prefix = f"{dataset_id}/"
    listed = sorted(p.removeprefix(prefix) for p in sums or {} if p.startswith(prefix))
    files = listed or list(MINARI_FILES)
    digests = {}
    with atomic_directory(target) as staging:
        for relative in files:
            path = f"{dataset_id}/{relative}"
            digests[path] = fetch(
                _join(base, path), staging / relative, _expected(sums, path, base), progress=progress
            )
        verify_minari_folder(staging, _join(base, dataset_id))
    verified = (
        f"{CHECKSUM_FILE}, metadata.json and main_data.hdf5 read"
        if sums
        else "metadata.json and main_data.hdf5 read"
    )
    return DownloadResult("minari", dataset_id, (target,), verified_by=verified, sha256=digests)


@contextmanager
def _minari_root_at(root: Path) -> Iterator[None]:
    """Minari reads its root from ``$MINARI_DATASETS_PATH`` at each call: point it at ``root`` meanwhile."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _download_minari_remote(dataset_id: str, remote: str | None, target: Path) -> DownloadResult:
    """Minari's own downloader into a staging root beside Minari's root; the folder is renamed when complete."""
    where = remote or os.environ.get("MINARI_REMOTE") or "Minari's default remote"
    try:
        import minari
    except ImportError as error:
        raise DownloadError(
            f"downloading {dataset_id!r} needs minari: pip install 'fidec[d4rl]' (or give a plain mirror with "
            f"--url http://...)."
        ) from error
    root = minari_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fidec-download-") as staging_root:
        try:
            with _minari_root_at(Path(staging_root)):
                minari.download_dataset(f"{remote.rstrip('/')}/{dataset_id}" if remote else dataset_id)
        except Exception as error:  # minari and its storage clients raise many types; all mean "not fetched"
            raise DownloadError(
                f"Minari could not download {dataset_id!r} from {where}: {type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}. Check the id and the network, or give a "
                "mirror with --url (hf://<org>, gcp://<bucket>, or an http(s):// folder in Minari's layout)."
            ) from error
        downloaded = Path(staging_root) / dataset_id
        verify_minari_folder(downloaded, f"{dataset_id} from {where}")
        with atomic_directory(target) as staging:
            for child in downloaded.iterdir():
                shutil.move(str(child), staging / child.name)
        _keep_namespace_metadata(Path(staging_root), root)
    return DownloadResult(
        "minari", dataset_id, (target,), verified_by="Minari's downloader; metadata and HDF5 read"
    )


def _keep_namespace_metadata(staging_root: Path, root: Path) -> None:
    """Minari's namespace descriptions (``<namespace>/namespace_metadata.json``) join the real root if new."""
    for source in staging_root.rglob("namespace_metadata.json"):
        destination = root / source.relative_to(staging_root)
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(destination) as temporary:
                shutil.copyfile(source, temporary)
    fsync_dir(root)
