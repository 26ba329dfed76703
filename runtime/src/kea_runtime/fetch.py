"""Storage initializer: puts a model's artifacts (or a custom model's code) into a directory.

Run by the model Pod's init container before MLServer starts:

    python -m kea_runtime.fetch --dest /mnt/models --uri https://host/iris.tar.gz
    python -m kea_runtime.fetch --dest /mnt/models --git-url https://host/repo.git \
        --revision v1.2 --path models/iris

Schemes: `http(s)://` (one file, kept under its basename, or a `.tar.gz`/`.tgz`/`.tar`/`.zip`
archive unpacked with every entry checked to stay inside the destination), `file://` (copied),
`pvc://` (nothing to do: the operator mounts the claim), git via the `git` binary (shallow fetch
of a branch, tag or commit). Network steps time out and are retried 3 times with backoff; any
failure exits non-zero with one line saying what failed, so the Pod shows it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar

logger = logging.getLogger("kea_runtime.fetch")

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 60.0
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
CHUNK = 1 << 20

T = TypeVar("T")


class FetchError(Exception):
    """A fetch that cannot succeed; the message is what the init container prints."""


class _Retryable(FetchError):
    """A failure worth another attempt (network errors, 5xx, 429, git transport errors)."""


def _retry(what: str, step: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Runs `step`, retrying retryable failures with exponential backoff (1 s, 2 s, ...)."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except _Retryable as err:
            if attempt == attempts:
                raise FetchError(f"{what}: {err} (gave up after {attempts} attempts)") from None
            delay = BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning(
                "%s: %s; retrying in %.0f s (attempt %d/%d)", what, err, delay, attempt, attempts
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


# HTTP --------------------------------------------------------------------------------------------


def _download(url: str, target: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "kea-runtime-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except urllib.error.HTTPError as err:
        message = f"HTTP {err.code} {err.reason}"
        if err.code >= 500 or err.code == 429:
            raise _Retryable(message) from None
        raise FetchError(f"GET {url}: {message}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise _Retryable(f"cannot reach {url}: {reason}") from None


def fetch_http(
    url: str, dest: Path, sha256: str | None = None, timeout: float = TIMEOUT_SECONDS
) -> None:
    """Downloads `url`; unpacks archives into `dest`, keeps other files under their basename."""
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    name = PurePosixPath(path).name
    if not name:
        raise FetchError(f"{url}: the URL names no file (its path ends with '/')")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".kea-fetch-") as tmp:
        downloaded = Path(tmp) / name
        logger.info("downloading %s", url)
        _retry(f"GET {url}", lambda: _download(url, downloaded, timeout))
        size = downloaded.stat().st_size
        logger.info("downloaded %s (%d bytes)", name, size)
        if sha256:
            _check_sha256(downloaded, sha256)
        if name.lower().endswith(ARCHIVE_SUFFIXES):
            unpack(downloaded, dest)
        else:
            os.replace(downloaded, dest / name)
            logger.info("stored %s", dest / name)


def _check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise FetchError(f"{path.name}: sha256 is {digest.hexdigest()}, expected {expected}")
    logger.info("sha256 of %s verified", path.name)


# Archives ----------------------------------------------------------------------------------------


def _safe_member_path(dest: Path, name: str, archive: str) -> Path:
    """Where an archive entry goes; refuses absolute paths and `..` escaping the destination."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise FetchError(
            f"{archive}: entry {name!r} would be written outside {dest}; refusing the archive"
        )
    target = (dest / pure).resolve()
    root = dest.resolve()
    if target != root and root not in target.parents:
        raise FetchError(
            f"{archive}: entry {name!r} would be written outside {dest}; refusing the archive"
        )
    return target


def unpack(archive: Path, dest: Path) -> None:
    """Unpacks a tar or zip archive into `dest` after checking every entry first."""
    logger.info("unpacking %s into %s", archive.name, dest)
    dest.mkdir(parents=True, exist_ok=True)
    if archive.name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for info in members:
                    _safe_member_path(dest, info.filename, archive.name)
                zf.extractall(dest)
        except zipfile.BadZipFile as err:
            raise FetchError(f"{archive.name}: not a valid zip archive ({err})") from None
        logger.info("unpacked %d entries", len(members))
        return
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _safe_member_path(dest, member.name, archive.name)
                if member.issym() or member.islnk():
                    # Symlinks resolve from their own directory, hard links from the archive root.
                    base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
                    target = posixpath.normpath(str(base / member.linkname))
                    if posixpath.isabs(member.linkname) or target.split("/")[0] == "..":
                        raise FetchError(
                            f"{archive.name}: link {member.name!r} -> {member.linkname!r} points "
                            f"outside {dest}; refusing the archive"
                        )
                elif not (member.isfile() or member.isdir()):
                    raise FetchError(
                        f"{archive.name}: entry {member.name!r} is a device or fifo; "
                        "refusing the archive"
                    )
            tf.extractall(dest, filter="data")
    except tarfile.TarError as err:
        raise FetchError(f"{archive.name}: not a valid tar archive ({err})") from None
    logger.info("unpacked %d entries", len(members))


# Local copies ------------------------------------------------------------------------------------


def copy_tree(source: Path, dest: Path) -> None:
    """Copies a file or a directory's contents into `dest` (which may already exist)."""
    if not source.exists():
        raise FetchError(f"{source} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copy2(source, dest / source.name)
        logger.info("copied %s to %s", source, dest / source.name)
        return
    # Child by child: `dest` itself may be a volume's mount point owned by someone else (an
    # emptyDir is root's), whose mode and times copytree's final copystat may not change.
    for child in sorted(source.iterdir()):
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.copytree(child, dest / child.name, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(child, dest / child.name, follow_symlinks=False)
    logger.info("copied %s to %s", source, dest)


# Git ---------------------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path, timeout: float, retryable: bool = True) -> str:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    cmd = ["git", *args]
    logger.debug("running %s", " ".join(cmd))
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise FetchError("the git binary is not installed") from None
    except subprocess.TimeoutExpired:
        raise _Retryable(f"git {args[0]} timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        if retryable:
            raise _Retryable(f"git {args[0]}: {message}")
        raise FetchError(f"git {args[0]}: {message}")
    return done.stdout


def fetch_git(
    url: str,
    dest: Path,
    revision: str | None = None,
    subdir: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> str:
    """Shallow-fetches `revision` (branch, tag or commit; default the remote HEAD) of `url` and
    copies `subdir` (default: the whole tree, without .git) into `dest`. Returns the commit."""
    rev = revision or "HEAD"
    with tempfile.TemporaryDirectory(prefix="kea-git-") as tmp:
        work = Path(tmp)
        _git(["init", "--quiet"], work, timeout, retryable=False)
        logger.info("fetching %s at %s", url, rev)

        def shallow() -> None:
            _git(["fetch", "--quiet", "--depth", "1", url, rev], work, timeout)

        try:
            _retry(f"git fetch {url} {rev}", shallow)
        except FetchError as err:
            # Servers that refuse to serve a commit by sha: fetch everything, then look it up.
            logger.warning("shallow fetch failed (%s); fetching all refs", err)
            _retry(
                f"git fetch {url}",
                lambda: _git(
                    [
                        "fetch",
                        "--quiet",
                        url,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                    work,
                    timeout,
                ),
            )
            try:
                _git(
                    ["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                    work,
                    timeout,
                    retryable=False,
                )
            except FetchError:
                try:
                    _git(
                        ["rev-parse", "--verify", "--quiet", f"origin/{rev}^{{commit}}"],
                        work,
                        timeout,
                        retryable=False,
                    )
                except FetchError:
                    raise FetchError(
                        f"{url}: revision {rev!r} is not a branch, tag or commit of the repository"
                    ) from None
                rev = f"origin/{rev}"
            _git(["update-ref", "FETCH_HEAD", rev], work, timeout, retryable=False)
        _git(
            ["-c", "advice.detachedHead=false", "checkout", "--quiet", "FETCH_HEAD"],
            work,
            timeout,
            retryable=False,
        )
        commit = _git(["rev-parse", "HEAD"], work, timeout, retryable=False).strip()
        logger.info("checked out %s", commit)
        source = work
        if subdir:
            source = _safe_member_path(work, subdir.strip("/"), url)
            if not source.is_dir():
                raise FetchError(
                    f"{url}@{rev}: path {subdir!r} is not a directory of the repository"
                )
        copy_tree(source, dest)
        return commit


# Entry point -------------------------------------------------------------------------------------


def fetch(
    dest: Path,
    uri: str | None = None,
    git_url: str | None = None,
    revision: str | None = None,
    path: str | None = None,
    sha256: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Fetches `uri` or the git repository `git_url` into `dest`."""
    logger.debug("fetch: enter dest=%s uri=%s git_url=%s", dest, uri, git_url)
    if git_url:
        fetch_git(git_url, dest, revision, path, timeout)
        return
    if not uri:
        raise FetchError("nothing to fetch: give --uri or --git-url")
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        fetch_http(uri, dest, sha256, timeout)
    elif scheme == "file":
        copy_tree(Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path)), dest)
    elif scheme == "pvc":
        logger.info("%s is mounted by the operator; nothing to fetch", uri)
    elif scheme == "" and uri.startswith("/"):
        copy_tree(Path(uri), dest)
    else:
        raise FetchError(
            f"unsupported scheme {scheme + '://' if scheme else uri!r} in {uri}: KEA fetches "
            "http(s)://, file://, pvc:// and git repositories (for s3:// or gs://, use the "
            "bucket's https:// URL, or a PVC)"
        )
    logger.debug("fetch: exit dest=%s", dest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kea_runtime.fetch",
        description="Fetch a model's artifacts or code into a directory.",
    )
    parser.add_argument(
        "--dest", required=True, type=Path, help="directory to fill (created if absent)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--uri", help="http(s)://, file://, pvc:// URI of a file or archive")
    source.add_argument("--git-url", help="git repository URL")
    parser.add_argument(
        "--revision", help="branch, tag or commit (git; default: the remote's HEAD)"
    )
    parser.add_argument("--path", help="subdirectory of the repository to copy (git)")
    parser.add_argument("--sha256", help="expected sha256 of the downloaded file (http)")
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_SECONDS, help="seconds per network step"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s kea-fetch %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if (args.revision or args.path) and not args.git_url:
        parser.error("--revision and --path go with --git-url")
    started = time.monotonic()
    try:
        fetch(
            args.dest, args.uri, args.git_url, args.revision, args.path, args.sha256, args.timeout
        )
    except FetchError as err:
        logger.error("fetch failed: %s", err)
        return 1
    except OSError as err:
        logger.error("fetch failed: %s", err)
        return 1
    logger.info("done in %.1f s: %s", time.monotonic() - started, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
