"""Weights resolution: local files, cached downloads over http, sha256 checks, offline mode."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from pysalient.engine import hub


@pytest.fixture()
def served_file(tmp_path, monkeypatch):
    payload = b"pysalient weights " * 1000
    digest = hashlib.sha256(payload).hexdigest()
    root = tmp_path / "www"
    root.mkdir()
    name = f"model-{digest[:8]}.pth"
    (root / name).write_bytes(payload)
    (root / "model-deadbeef.pth").write_bytes(payload)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("PYSALIENT_OFFLINE", raising=False)
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", name, digest, payload
    server.shutdown()


def test_download_once_then_cache(served_file, monkeypatch) -> None:
    base, name, digest, payload = served_file
    path = hub.resolve_weights(f"{base}/{name}", sha256=digest)
    assert path.read_bytes() == payload and path.parent == hub.cache_dir()
    monkeypatch.setenv("PYSALIENT_OFFLINE", "1")  # cached now: no network needed
    assert hub.resolve_weights(f"{base}/{name}") == path


def test_hash_mismatch_leaves_nothing_in_the_cache(served_file) -> None:
    base, name, _, _ = served_file
    with pytest.raises(ValueError, match="sha256"):
        hub.resolve_weights(f"{base}/{name}", sha256="0" * 64)
    with pytest.raises(ValueError, match="prefix deadbeef"):
        hub.resolve_weights(f"{base}/model-deadbeef.pth")
    assert not any(hub.cache_dir().iterdir())


def test_offline_refuses_to_download(served_file, monkeypatch) -> None:
    base, name, _, _ = served_file
    monkeypatch.setenv("PYSALIENT_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="PYSALIENT_OFFLINE"):
        hub.resolve_weights(f"{base}/{name}")


def test_local_files(tmp_path: Path) -> None:
    weights = tmp_path / "local.pth"
    weights.write_bytes(b"abc")
    assert hub.resolve_weights(str(weights)) == weights
    assert hub.resolve_weights(f"file://{weights}") == weights
    assert hub.resolve_weights(str(weights), sha256=hashlib.sha256(b"abc").hexdigest()) == weights
    with pytest.raises(ValueError, match="sha256 mismatch"):
        hub.resolve_weights(str(weights), sha256="1" * 64)
    with pytest.raises(FileNotFoundError, match="not found"):
        hub.resolve_weights(str(tmp_path / "absent.pth"))
