"""Pages in Spanish: validation problems on their lines, upload errors, flashes; the stored report stays English."""
from __future__ import annotations

import io
import json

from tests.support.accounts import csrf_token_from, login
from tests.support.data import as_jsonl, examples

SPANISH = {"Accept-Language": "es"}


def form_upload(client, data: bytes, htmx: bool = False, **fields):
    """POST the upload form as a Spanish browser does: the token first, the file last."""
    token = csrf_token_from(client.get("/datasets", headers=SPANISH).get_data(as_text=True))
    form = {"csrf_token": token, **fields, "file": (io.BytesIO(data), "subida.jsonl")}
    headers = {**SPANISH, **({"HX-Request": "true"} if htmx else {})}
    return client.post("/datasets", data=form, content_type="multipart/form-data", headers=headers)


def test_validation_problems_read_in_spanish_on_their_lines(translations, client, user, make_token):
    login(client, user.email)
    data = (as_jsonl(examples("instruction", 12)) + b'{"instruction": "sin respuesta"}\n'
            + b'{"instruction": "a", "output": "b"\n')
    response = form_upload(client, data, name="con errores")
    assert response.status_code == 303
    html = client.get(response.headers["Location"], headers=SPANISH).get_data(as_text=True)
    assert '<html lang="es">' in html and '<span class="badge badge-invalid">no válido</span>' in html
    assert "<tr><td>13</td><td>falta &#39;output&#39;</td></tr>" in html
    assert "<tr><td>14</td><td>JSON no válido: se esperaba el delimitador &#39;,&#39; (columna 35)</td></tr>" in html
    assert "12 ejemplos" not in html and "Aún no se puede entrenar con este conjunto de datos." in html
    dataset_id = response.headers["Location"].rsplit("/", 1)[1]
    api = client.get(f"/api/v1/datasets/{dataset_id}",
                     headers={"Authorization": f"Bearer {make_token(user)}", **SPANISH}).get_json()
    assert [(problem["line"], problem["message"]) for problem in api["errors"]["errors"]] == [
        (13, "'output' is missing"), (14, "invalid JSON: Expecting ',' delimiter (column 35)")]


def test_a_ready_dataset_counts_in_spanish_with_plurals(translations, client, user):
    login(client, user.email)
    response = form_upload(client, as_jsonl(examples("chat", 12)) + json.dumps({"text": "x"}).encode() + b"\n",
                           name="casi", skip_invalid="true")
    html = client.get(response.headers["Location"], headers=SPANISH).get_data(as_text=True)
    assert "12 ejemplos de chat listos para entrenar." in html
    assert "Se descartó 1 registro no válido." in html
    assert "<h2>Vista previa</h2>" in html and "Ejemplo 1" in html


def test_an_upload_refused_by_the_form_says_why_in_spanish(translations, client, user):
    login(client, user.email)
    response = form_upload(client, as_jsonl(examples("text", 12)), htmx=True, max_seq_length="5")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<strong>El formulario de subida tiene campos no válidos.</strong>" in html
    assert "<code>max_seq_length</code>: Usa un número entero de tokens entre 16 y 131.072." in html


def test_flash_messages_and_page_errors_are_spanish(translations, client, user):
    login(client, user.email)
    response = form_upload(client, as_jsonl(examples("text", 12)), name="efímero")
    token = csrf_token_from(client.get("/datasets", headers=SPANISH).get_data(as_text=True))
    delete = client.post(response.headers["Location"] + "/delete", data={"csrf_token": token}, headers=SPANISH)
    assert delete.status_code == 303
    html = client.get("/datasets", headers=SPANISH).get_data(as_text=True)
    assert "Conjunto de datos «efímero» eliminado." in html
    missing = client.get("/no/such/page", headers=SPANISH)
    assert missing.status_code == 404 and "Esta página no existe o no es tuya." in missing.get_data(as_text=True)
