"""The test processes' S3 server holds as many buckets as a long run makes: one per S3 test, each a SeaweedFS
collection with volumes of its own (left to itself, weed allows free disk ÷ 1 GiB volumes, and a CI machine's 71
ran out before its last tests)."""
from __future__ import annotations

import json
import urllib.request

from tests.support.seaweed import MAX_VOLUMES


def test_the_s3_server_allows_thousands_of_volumes(seaweed):
    ports = json.loads((seaweed.log_path.parent / "ports.json").read_text())
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['master.port']}/dir/status", timeout=10) as answer:
        topology = json.load(answer)["Topology"]
    assert topology["Max"] == MAX_VOLUMES >= 1000, topology
