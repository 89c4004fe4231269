"""``pretrained=True``: the project's published weights, found in torch.hub's cache, downloaded
for real from an HTTP server on 127.0.0.1 (good, truncated and altered files, a server gone
or silent) or read from the repository's copy; every refusal one line, nothing bad cached."""

import hashlib
import json
import socket
from pathlib import Path

import pytest
import torch
from localserver import Server

import idresnet
from idresnet.errors import UsageError
from idresnet.weights import WeightsRecord, load_weights, published, save_weights

ROOT = Path(__file__).resolve().parents[2]
PATH = "results/tiny/preact_resnet20-tiny.safetensors"  # the row's path in the (stand-in) repository


@pytest.fixture
def served(tmp_path):
    """A tiny preact_resnet20 weights file served from a stand-in repository folder."""
    net = idresnet.create_model("preact_resnet20", width=0.25).eval()
    file = tmp_path / "served" / PATH
    file.parent.mkdir(parents=True)
    save_weights(file, net.state_dict(), WeightsRecord(model="preact_resnet20", model_kwargs={"width": 0.25}))
    server = Server(tmp_path / "served")
    yield server, file, net
    server.close()


@pytest.fixture
def table(tmp_path, monkeypatch, served):
    """published.json with one row, the served file; torch.hub's folder and the repository
    (its copies) in tmp_path; no IDRESNET_WEIGHTS_URL from the environment."""
    _, file, _ = served
    row = {
        "model": "preact_resnet20",
        "file": "preact_resnet20-tiny.safetensors",
        "path": PATH,
        "url": None,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "bytes": file.stat().st_size,
        "about": "a tiny stand-in",
    }
    path = tmp_path / "published.json"
    path.write_text(json.dumps({"format": "idresnet-published-weights", "base_url": None, "weights": [row]}))
    monkeypatch.setattr(published, "TABLE", path)
    monkeypatch.setattr(published, "REPOSITORY", tmp_path / "checkout")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(published.ENV_URL, raising=False)
    assert published.cache_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    return row


def cached_files():
    folder = published.cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_good_file_is_downloaded_verified_cached_and_not_downloaded_again(served, table, monkeypatch):
    server, file, net = served
    monkeypatch.setenv(published.ENV_URL, server.url + "/good")
    model = idresnet.create_model("preact_resnet20", pretrained=True)
    assert cached_files() == [table["file"]] and server.hits == {f"/good/{PATH}": 1}
    assert (published.cache_dir() / table["file"]).read_bytes() == file.read_bytes()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in model.state_dict().items())
    again = idresnet.create_model("preact_resnet20", pretrained=True)
    assert server.hits == {f"/good/{PATH}": 1}  # from the cache
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), again(x)) and torch.equal(model(x), net(x))


@pytest.mark.parametrize("mode", ["truncated", "altered"])
def test_a_file_of_another_hash_is_refused_and_not_cached(served, table, monkeypatch, mode):
    server, file, _ = served
    monkeypatch.setenv(published.ENV_URL, server.url + "/" + mode)
    with pytest.raises(UsageError) as err:
        idresnet.create_model("preact_resnet20", pretrained=True)
    text = one_line(err)
    got = hashlib.sha256(file.read_bytes()[: file.stat().st_size // 2]).hexdigest() if mode == "truncated" else None
    assert f"{server.url}/{mode}/{PATH}: sha256 mismatch: expected {table['sha256']}, got " in text
    assert got is None or f"got {got} ({file.stat().st_size // 2} bytes" in text
    assert "nothing was kept" in text
    assert cached_files() == []  # no file, no temporary


def test_a_connection_cut_inside_a_chunk_is_one_line(served, table, monkeypatch):
    server, _, _ = served
    monkeypatch.setenv(published.ENV_URL, server.url + "/cut-chunk")
    with pytest.raises(UsageError) as err:
        idresnet.create_model("preact_resnet20", pretrained=True)
    assert f"cannot download preact_resnet20's weights from {server.url}/cut-chunk/{PATH} (IncompleteRead" in (
        one_line(err)
    )
    assert cached_files() == []


def test_a_cached_file_of_another_hash_is_replaced(served, table, monkeypatch):
    server, file, _ = served
    stale = published.cache_dir() / table["file"]
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not the weights")
    monkeypatch.setenv(published.ENV_URL, server.url + "/good")
    assert published.published_file("preact_resnet20") == stale
    assert stale.read_bytes() == file.read_bytes() and server.hits == {f"/good/{PATH}": 1}


def test_server_gone_is_one_line_naming_the_url_and_a_local_file(table, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(published.ENV_URL, f"http://127.0.0.1:{port}")
    with pytest.raises(UsageError) as err:
        idresnet.create_model("preact_resnet20", pretrained=True)
    text = one_line(err)
    assert text.startswith(f"cannot download preact_resnet20's weights from http://127.0.0.1:{port}/{PATH} (")
    assert "refused" in text.lower() and f"pass pretrained=PATH to a local copy of {table['file']}" in text
    assert cached_files() == []


def test_a_silent_server_times_out(table, monkeypatch):
    """A server that takes the connection and never answers: the timeout ends the wait."""
    monkeypatch.setattr(published, "TIMEOUT_S", 0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # the kernel completes the handshake; nobody reads or writes
        monkeypatch.setenv(published.ENV_URL, f"http://127.0.0.1:{s.getsockname()[1]}")
        with pytest.raises(UsageError) as err:
            idresnet.create_model("preact_resnet20", pretrained=True)
    assert "timed out" in one_line(err) and cached_files() == []


def test_without_a_url_the_repository_copy_is_read_in_place(served, table, tmp_path):
    _, file, _ = served
    copy = tmp_path / "checkout" / PATH
    copy.parent.mkdir(parents=True)
    copy.write_bytes(file.read_bytes())
    assert published.published_file("preact_resnet20") == copy and cached_files() == []
    copy.write_bytes(file.read_bytes()[:-1] + b"x")
    with pytest.raises(UsageError) as err:
        published.published_file("preact_resnet20")
    assert f"{copy}: sha256 mismatch: expected {table['sha256']}, got " in one_line(err)


def test_without_a_url_or_a_copy_is_one_line_saying_how(table):
    with pytest.raises(UsageError) as err:
        idresnet.create_model("preact_resnet20", pretrained=True)
    text = one_line(err)
    assert f"have no download URL yet: set {published.ENV_URL}=BASE to fetch BASE/{PATH}" in text
    assert "raw.githubusercontent.com/OWNER/REPO/REF" in text and "pretrained=PATH" in text


def test_table_base_url_is_used_when_set(served, table, tmp_path, monkeypatch):
    server, _, _ = served
    data = json.loads(published.TABLE.read_text())
    published.TABLE.write_text(json.dumps({**data, "base_url": server.url + "/good/"}))
    assert published.published_file("preact_resnet20").is_file() and server.hits == {f"/good/{PATH}": 1}


def test_a_name_without_published_weights_lists_those_with(table):
    with pytest.raises(UsageError) as err:
        idresnet.create_model("resnet20", pretrained=True)
    assert one_line(err) == (
        "no published weights for resnet20; published: preact_resnet20 (pretrained=PATH loads a file of your own)"
    )


def test_the_table_names_registered_networks_and_the_files_in_the_repository():
    """Each row is a registered name whose file is in git at its path, of its sha256 and size,
    and loads as that network (so pretrained=True works in a checkout without a URL)."""
    base, rows = published.table()
    assert base is None  # the project has no public URL yet: no host is claimed
    assert rows and set(rows) <= set(idresnet.list_models())
    for name, row in rows.items():
        file = ROOT / row.path
        assert hashlib.sha256(file.read_bytes()).hexdigest() == row.sha256 and file.stat().st_size == row.bytes
        assert Path(row.path).name == row.file and load_weights(file)[1]["model"] == name
    assert rows["preact_resnet110"].sha256 == "9e71b0ac90c3b6584dda53ee6a2bb26202efcae406a41352e773b4adba65608c"
