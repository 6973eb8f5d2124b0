"""``scripts/prepare_data.py``'s stamp on real Multi30k: its fingerprint names the binarized data to the byte (the
same data prepared in two folders: one fingerprint, though fairseq-preprocess's logs differ; one byte changed: another
one), and it is not an option (a rerun is a no-op, a stamp written before it existed still counts as prepared)."""

import json
import sys

from conftest import run

from fairseq_interp.common.preparation import FINGERPRINT_KEY, binarized_fingerprint, recorded_fingerprint

TINY = ["--src", "en", "--tgt", "de", "--train-size", "300", "--valid-size", "20", "--test-size", "20",
        "--vocab-size", "400"]


def prepare(out, *extra):
    return run([sys.executable, "scripts/prepare_data.py", *TINY, "--out", str(out), *extra], in_process=True)


def test_the_fingerprint_names_the_binarized_data_and_a_rerun_is_still_a_no_op(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    prepare(first)
    prepare(second)
    assert (first / "bin" / "preprocess.log").read_text() != (second / "bin" / "preprocess.log").read_text()
    assert recorded_fingerprint(first) == recorded_fingerprint(second) == binarized_fingerprint(first / "bin")

    data = first / "bin" / "train.en-de.de.bin"
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 1
    data.write_bytes(bytes(content))
    assert binarized_fingerprint(first / "bin") != recorded_fingerprint(first)

    stamp = first / "prepare.json"
    written = stamp.stat().st_mtime_ns
    assert "already prepared" in prepare(first).stdout
    assert stamp.stat().st_mtime_ns == written

    options = json.loads(stamp.read_text())
    del options[FINGERPRINT_KEY]  # a folder prepared before the stamp held a fingerprint
    stamp.write_text(json.dumps(options))
    assert "already prepared" in prepare(first).stdout
    assert recorded_fingerprint(first) is None

    refused = run([sys.executable, "scripts/prepare_data.py", *TINY[:-1], "500", "--out", str(first)], check=False)
    assert refused.returncode != 0 and "prepared with other options" in refused.stderr
