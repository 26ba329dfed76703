"""The storage initializer against a real HTTP server, real archives and a real git repository."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port, git
from kea_runtime import fetch as kf


@pytest.fixture(scope="module")
def http_root(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kea_runtime.fetch", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_tar(path: Path, entries: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_http_single_file(http_root, tmp_path):
    url, root = http_root
    (root / "weights.bin").write_bytes(b"\x00\x01model")
    digest = hashlib.sha256(b"\x00\x01model").hexdigest()
    done = run_cli(
        "--dest", str(tmp_path / "out"), "--uri", f"{url}/weights.bin", "--sha256", digest
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "weights.bin").read_bytes() == b"\x00\x01model"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["weights.bin"]
    assert "downloading" in done.stderr


def test_http_sha256_mismatch(http_root, tmp_path):
    url, root = http_root
    (root / "other.bin").write_bytes(b"abc")
    done = run_cli("--dest", str(tmp_path), "--uri", f"{url}/other.bin", "--sha256", "0" * 64)
    assert done.returncode == 1
    assert "sha256 is" in done.stderr


def test_http_tar_gz_unpacked(http_root, tmp_path):
    url, root = http_root
    make_tar(root / "model.tar.gz", {"model.joblib": b"m", "sub/config.json": b"{}"})
    done = run_cli("--dest", str(tmp_path / "out"), "--uri", f"{url}/model.tar.gz")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model.joblib").read_bytes() == b"m"
    assert (tmp_path / "out" / "sub" / "config.json").read_bytes() == b"{}"
    assert not (tmp_path / "out" / "model.tar.gz").exists()


def test_http_zip_unpacked(http_root, tmp_path):
    url, root = http_root
    with zipfile.ZipFile(root / "model.zip", "w") as zf:
        zf.writestr("model.onnx", b"onnx")
    kf.fetch(tmp_path, uri=f"{url}/model.zip")
    assert (tmp_path / "model.onnx").read_bytes() == b"onnx"


@pytest.mark.parametrize("entry", ["../evil.txt", "/tmp/kea-evil.txt", "ok/../../evil.txt"])
def test_tar_traversal_rejected(http_root, tmp_path, entry):
    url, root = http_root
    make_tar(root / "evil.tar.gz", {"model.joblib": b"m", entry: b"pwned"})
    dest = tmp_path / "a" / "out"
    done = run_cli("--dest", str(dest), "--uri", f"{url}/evil.tar.gz")
    assert done.returncode == 1
    assert "would be written outside" in done.stderr
    assert repr(entry) in done.stderr
    assert not (tmp_path / "a" / "evil.txt").exists()
    assert not (dest / "model.joblib").exists(), "nothing is unpacked from a refused archive"


def test_tar_symlink_escape_rejected(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(kf.FetchError, match="outside"):
        kf.unpack(archive, tmp_path / "out")


def test_tar_symlink_inside_accepted(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tf:
        data = tarfile.TarInfo("weights/model.bin")
        data.size = 1
        tf.addfile(data, io.BytesIO(b"w"))
        link = tarfile.TarInfo("current/model.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "../weights/model.bin"
        tf.addfile(link)
    kf.unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "current" / "model.bin").read_bytes() == b"w"


def test_zip_traversal_rejected(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", b"pwned")
    with pytest.raises(kf.FetchError, match="outside"):
        kf.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_unreachable_url_fails_after_retries(tmp_path, monkeypatch):
    port = free_port()  # nothing listens there
    done = run_cli(
        "--dest", str(tmp_path), "--uri", f"http://127.0.0.1:{port}/model.joblib", "--timeout", "5"
    )
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
    assert "gave up after 3 attempts" in done.stderr
    assert done.stderr.count("retrying") == 2


def test_http_404_is_not_retried(http_root, tmp_path):
    url, _ = http_root
    done = run_cli("--dest", str(tmp_path), "--uri", f"{url}/missing.joblib")
    assert done.returncode == 1
    assert "HTTP 404" in done.stderr
    assert "retrying" not in done.stderr


def test_file_and_pvc_and_unsupported(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "model.pkl").write_bytes(b"p")
    kf.fetch(tmp_path / "out", uri=f"file://{src}")
    assert (tmp_path / "out" / "sub" / "model.pkl").read_bytes() == b"p"
    assert run_cli("--dest", str(tmp_path / "pvc"), "--uri", "pvc://models/iris").returncode == 0
    done = run_cli("--dest", str(tmp_path), "--uri", "s3://bucket/model.joblib")
    assert done.returncode == 1
    assert "unsupported scheme 's3://'" in done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("gitrepo")
    git(root, "init", "--quiet", "--initial-branch=main")
    (root / "models").mkdir()
    (root / "models" / "version.txt").write_text("one")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "one")
    first = git(root, "rev-parse", "HEAD")
    git(root, "tag", "v1")
    (root / "models" / "version.txt").write_text("two")
    git(root, "commit", "--quiet", "-am", "two")
    second = git(root, "rev-parse", "HEAD")
    git(root, "branch", "stable", first)
    return root, first, second


@pytest.mark.parametrize(
    ("revision", "expected"),
    [(None, "two"), ("main", "two"), ("v1", "one"), ("stable", "one"), ("first-sha", "one")],
)
def test_git_revisions(repo, tmp_path, revision, expected):
    root, first, _ = repo
    args = ["--dest", str(tmp_path / "out"), "--git-url", f"file://{root}", "--path", "models"]
    if revision:
        args += ["--revision", first if revision == "first-sha" else revision]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "version.txt").read_text() == expected
    assert "checked out" in done.stderr


def test_git_errors(repo, tmp_path):
    root, _, _ = repo
    done = run_cli("--dest", str(tmp_path), "--git-url", f"file://{root}", "--revision", "nope")
    assert done.returncode == 1
    assert "revision 'nope'" in done.stderr
    done = run_cli("--dest", str(tmp_path), "--git-url", f"file://{root}", "--path", "../..")
    assert done.returncode == 1
    assert "outside" in done.stderr
    done = run_cli("--dest", str(tmp_path), "--git-url", f"file://{tmp_path}/no-repo")
    assert done.returncode == 1
    assert "git fetch" in done.stderr
