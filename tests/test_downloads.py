"""Downloads are saved under the artifact's own name, whatever characters it holds."""
from app.downloads import attachment_disposition


def test_the_download_name_survives_non_ascii_characters_and_quotes():
    disposition = attachment_disposition('run 7 "résumé".jsonl')
    assert disposition.startswith("attachment; ")
    assert 'filename="run 7 _r_sum__.jsonl"' in disposition
    assert "filename*=UTF-8''run%207%20%22r%C3%A9sum%C3%A9%22.jsonl" in disposition
