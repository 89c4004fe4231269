"""idresnet.files.file_digest: the checksums of downloads, converted sources and exports."""

import hashlib

import pytest

from idresnet.files import file_digest


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])  # empty, one short chunk, across a chunk boundary
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_file_digest_equals_hashlib_over_the_whole_file(tmp_path, size, algorithm):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_digest(path, algorithm) == hashlib.new(algorithm, data).hexdigest()
    assert file_digest(path, algorithm, chunk=7) == hashlib.new(algorithm, data).hexdigest()


def test_known_value(tmp_path):
    # sha256("abc") from FIPS 180-2, appendix B.1
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_digest(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
