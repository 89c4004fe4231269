"""Downloading CIFAR from a local HTTP server (no internet is needed or used)."""

import dataclasses
import functools
import http.server
import threading
import time

import numpy as np
import pytest
from databuild import cifar_batches, write_cifar_archive

from idresnet.data import cifar, load_dataset
from idresnet.errors import DatasetError
from idresnet.files import file_digest


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _CutShort(_Quiet):
    """Promises more bytes than it sends, then closes the connection."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"\x1f\x8b" + b"x" * 500)
        self.close_connection = True


@pytest.fixture
def serve(monkeypatch):
    servers = []

    def start(directory, handler=_Quiet):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setenv("IDRESNET_CIFAR_URL", f"http://127.0.0.1:{server.server_port}/")
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served_archive(tmp_path, monkeypatch):
    archive = write_cifar_archive(tmp_path / "www" / "cifar-10-python.tar.gz", cifar_batches())
    spec = dataclasses.replace(cifar.SPECS["cifar10"], md5=file_digest(archive, "md5"))
    monkeypatch.setitem(cifar.SPECS, "cifar10", spec)
    return archive


def _leftovers(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_then_cache(serve, served_archive, cache, capsys):
    serve(served_archive.parent)
    ds = load_dataset("cifar10")
    assert capsys.readouterr().err.startswith("downloading cifar-10-python.tar.gz: 0 MB (")  # a line
    assert ds.train_images.shape == (40, 32, 32, 3)
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == served_archive.read_bytes()
    assert _leftovers(cache) == ["arrays", "cifar-10-python.tar.gz"]
    served_archive.unlink()  # the second run needs no server
    assert np.array_equal(load_dataset("cifar10").train_images, ds.train_images)


def test_bad_checksum_leaves_nothing(serve, served_archive, cache, monkeypatch):
    monkeypatch.setitem(cifar.SPECS, "cifar10", dataclasses.replace(cifar.SPECS["cifar10"], md5="0" * 32))
    serve(served_archive.parent)
    with pytest.raises(DatasetError, match="md5 mismatch") as exc:
        load_dataset("cifar10")
    msg = str(exc.value)
    assert "cifar-10-python.tar.gz" in msg and "--data PATH" in msg and "\n" not in msg
    assert _leftovers(cache) == []  # no archive, no partial file


def test_cut_connection_leaves_nothing(serve, served_archive, cache):
    serve(served_archive.parent, _CutShort)
    with pytest.raises(DatasetError, match="could not download CIFAR-10"):
        load_dataset("cifar10")
    assert _leftovers(cache) == []


def test_no_server_fails_fast(monkeypatch, cache):
    monkeypatch.setenv("IDRESNET_CIFAR_URL", "http://127.0.0.1:9/")  # nothing listens
    start = time.monotonic()
    with pytest.raises(DatasetError) as exc:
        load_dataset("cifar100")
    assert time.monotonic() - start < 15
    msg = str(exc.value)
    assert msg.startswith("could not download CIFAR-100 (")
    assert "pass --data PATH to a local cifar-100-python.tar.gz" in msg and "\n" not in msg


def test_download_off(cache):
    with pytest.raises(DatasetError, match="download is off") as exc:
        load_dataset("cifar10", download=False)
    assert "or an image folder such as cifar10-jpeg.tar.gz" in str(exc.value)
    with pytest.raises(DatasetError, match="download is off") as exc:
        load_dataset("cifar100", download=False)
    # CIFAR-100's stand-in is a CIFAR-100 image folder, not the CIFAR-10 copy (issue #23)
    assert "cifar10-jpeg" not in str(exc.value) and "image folder of CIFAR-100" in str(exc.value)


def test_cached_archive_with_wrong_md5(cache):
    write_cifar_archive(cache / "cifar-10-python.tar.gz", cifar_batches())
    with pytest.raises(DatasetError, match="md5 mismatch") as exc:
        load_dataset("cifar10")
    assert str(cache / "cifar-10-python.tar.gz") in str(exc.value)


def test_default_urls_are_the_published_ones():
    assert cifar.SPECS["cifar10"].url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar.SPECS["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar.SPECS["cifar100"].url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert cifar.SPECS["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
