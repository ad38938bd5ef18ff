"""Static URLs carry a fingerprint of the file, so caches may keep them as long as the file is unchanged."""
from __future__ import annotations

import re

from app.static_files import fingerprint


def test_pages_link_static_files_with_a_content_fingerprint(client):
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r'/static/css/studio\.css\?v=[0-9a-f]{12}"', html)
    assert re.search(r'/static/vendor/htmx\.min\.js\?v=[0-9a-f]{12}"', html)


def test_fingerprint_follows_the_content(tmp_path):
    first, second = tmp_path / "a.css", tmp_path / "b.css"
    first.write_text("body { color: red; }")
    second.write_text("body { color: blue; }")
    assert fingerprint(first) != fingerprint(second)
    assert fingerprint(tmp_path / "gone.css") == "missing"


def test_a_fingerprinted_url_serves_the_file(client):
    html = client.get("/login").get_data(as_text=True)
    url = re.search(r'(/static/css/studio\.css\?v=[0-9a-f]{12})"', html).group(1)
    assert client.get(url).status_code == 200
