"""The API through the ASGI test client: answers, errors that name the problem, concurrency."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from tests.serve.conftest import QUIET, draw_png  # noqa: E402

pytestmark = QUIET

STATIC = Path(__file__).parents[2] / "deltanet" / "serve" / "static"
PNG = {"content-type": "image/png"}


def test_model_summary(client, predictor):
    m = client.get("/api/model").json()
    assert (m["model"], m["data"], m["input_shape"], m["recipe"]) == (
        "digits_cnn", "digits", [1, 8, 8], "digits",
    )  # fmt: skip
    assert [layer["type"] for layer in m["layers"]][:3] == ["Conv2D", "ReLU", "Conv2D"]
    assert m["layers"][4]["output_shape"] == [64, 4, 4] and m["layers"][-1]["output_shape"] == [10]
    assert sum(layer["parameters"] for layer in m["layers"]) == m["parameters"] == 151_306


def test_predict_json_matches_the_model(client, predictor, digits_test):
    x, y = digits_test
    one = client.post("/api/predict", json=x[0, 0].tolist()).json()  # 8x8, no channel axis
    assert one["class"] == int(np.argmax(predictor.predict(x[:1])[0])) == y[0]
    assert len(one["probabilities"]) == 10 and abs(sum(one["probabilities"]) - 1) < 1e-4
    batch = client.post("/api/predict", json={"input": x[:20].tolist()}).json()["predictions"]
    assert [p["class"] for p in batch] == list(np.argmax(predictor.predict(x[:20]), axis=1))
    assert np.mean([p["class"] for p in batch] == y[:20]) >= 0.9


@pytest.mark.parametrize("digit", ["1", "0"])
def test_predict_drawings_raw_and_uploaded(client, digit):
    png = draw_png(digit)
    assert client.post("/api/predict", content=png, headers=PNG).json()["label"] == digit
    files = {"file": ("digit.png", png, "image/png")}
    assert client.post("/api/predict", files=files).json()["label"] == digit


def test_a_png_of_the_models_own_size_is_taken_as_it_is(client, predictor, digits_test):
    import io

    from PIL import Image

    x, y = digits_test
    buf = io.BytesIO()
    Image.fromarray((x[3, 0] * 255).round().astype(np.uint8)).save(buf, "PNG")
    answer = client.post("/api/predict", content=buf.getvalue(), headers=PNG).json()
    assert answer["class"] == int(np.argmax(predictor.predict(x[3:4])[0])) == y[3]


def test_inspect_shows_every_layer_and_the_saliency(client, predictor):
    r = client.post("/api/inspect", content=draw_png("0"), headers=PNG).json()
    assert r["label"] == "0"
    assert [(lay["name"], lay["shape"], lay["kind"]) for lay in r["layers"]][::4] == [
        ("0", [32, 8, 8], "maps"), ("4", [64, 4, 4], "maps"), ("8", [10], "vector"),
    ]  # fmt: skip
    assert np.argmax(r["layers"][-1]["data"]) == r["class"]
    assert np.array(r["input"]).shape == (8, 8) and np.array(r["saliency"]).shape == (8, 8)
    f = r["frame"]  # the loop spans x 85-195, y 45-235 of the pad: the 8x8 covers it
    assert f["left"] <= 85 and f["top"] <= 45 and f["left"] + f["width"] >= 195
    # the saliency is the predicted logit's row of the Jacobian: δ at the input, by hand
    x = predictor._prepare(np.array(r["input"], dtype=np.float32)[None, None])
    model = predictor.model
    with predictor.lock:
        onehot = np.eye(10, dtype=np.float32)[[r["class"]]]
        model(x)
        dx = model.backward(onehot, input_grad=True)
        model.zero_grad()
    np.testing.assert_allclose(r["saliency"], dx[0, 0], rtol=1e-3, atol=1e-4)


BAD = [
    ("not an image", b"hello, world", {"content-type": "text/plain"}, 415, "expected a PNG"),
    ("not a PNG", b"GIF89a" + bytes(100), PNG, 415, "not a PNG image"),
    ("cut-off PNG", draw_png("1")[:80], PNG, 422, "not a readable PNG"),
    ("blank PNG", draw_png("blank"), PNG, 422, "no drawing"),
    ("invalid JSON", b"[1, 2", {"content-type": "application/json"}, 400, "not valid JSON"),
    ("NaN", b"[" + b", ".join([b"NaN"] * 64) + b"]", {"content-type": "application/json"},
     422, "NaN"),
    ("Infinity", json.dumps([[1e999] * 8] * 8).encode(), {"content-type": "application/json"},
     422, "Infinity"),
    ("overflow", json.dumps([[1e39] * 8] * 8).encode(), {"content-type": "application/json"},
     422, "not finite in float32"),
    ("wrong shape", json.dumps([[1, 2], [3, 4]]).encode(), {"content-type": "application/json"},
     422, "shape (2, 2)"),
    ("ragged", json.dumps([[1, 2], [3]]).encode(), {"content-type": "application/json"},
     422, "equal lengths"),
    ("strings", json.dumps([["a"] * 8] * 8).encode(), {"content-type": "application/json"},
     422, "numbers"),
    ("too many", json.dumps(np.zeros((65, 8, 8)).tolist()).encode(),
     {"content-type": "application/json"}, 422, "1 to 64 examples"),
    ("other keys", json.dumps({"x": 1}).encode(), {"content-type": "application/json"},
     422, '{"input": array}'),
]  # fmt: skip


@pytest.mark.parametrize("name, body, headers, status, words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_that_names_it_and_the_server_goes_on(
    client, name, body, headers, status, words
):
    r = client.post("/api/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    ok = client.post("/api/predict", content=draw_png("1"), headers=PNG)
    assert ok.status_code == 200 and ok.json()["label"] == "1"


def test_png_of_the_wrong_size_for_this_model(client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (5, 5), 255).save(buf, "PNG")
    r = client.post("/api/predict", content=buf.getvalue(), headers=PNG)
    assert r.status_code == 422 and "5x5" in r.json()["error"] and "8x8" in r.json()["error"]


def test_bodies_over_the_limit_are_refused_as_they_arrive(client):
    big = b"[" + b"0," * (1024**2 + 10) + b"0]"  # 2 MiB + 22 bytes
    r = client.post("/api/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: the bytes are counted as they come
        for _ in range(64):
            yield bytes(64 * 1024)

    r = client.post("/api/predict", content=chunks(), headers=PNG)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert client.post("/api/predict", content=draw_png("0"), headers=PNG).json()["label"] == "0"


def test_errors_for_routes_and_inspect(client):
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    r = client.post("/api/inspect", json=[1, 2])
    assert r.status_code == 415 and "PNG" in r.json()["error"]
    r = client.post("/api/predict", files={"note": (None, "text")})
    assert r.status_code == 422 and "no file" in r.json()["error"]
    r = client.get("/api/train/events?since=soon")
    assert r.status_code == 422 and "since" in r.json()["error"]
    assert client.get("/api/predict").json() == {"error": "Method Not Allowed"}


def test_the_page_needs_no_network(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    assert client.get("/docs").status_code == 404  # its scripts come from a CDN: off
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    for path in STATIC.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
        assert client.get(f"/static/{path.name}").status_code == 200


def test_concurrent_inspections_match_the_single_threaded_answers(predictor, digits_test):
    """The forward caches are the model's own: 8 threads inspecting different digits at once
    (forward, then backward through those caches) each get their own input's answer."""
    x = digits_test[0][:16]
    expected = [predictor.inspect(xi) for xi in x]
    results: dict[int, list] = {i: [] for i in range(8)}

    def work(t: int) -> None:
        for rep in range(6):
            i = (t + 3 * rep) % len(x)
            results[t].append((i, predictor.inspect(x[i])))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for answers in results.values():
        for i, got in answers:
            assert got["class"] == expected[i]["class"]
            np.testing.assert_allclose(got["probabilities"], expected[i]["probabilities"])
            np.testing.assert_allclose(got["saliency"], expected[i]["saliency"])


def _client_for(model_name: str, data: str, shape: tuple[int, ...]):
    """The app for an untrained zoo model, with the metadata a run of it would have."""
    from fastapi.testclient import TestClient

    from deltanet.serve.app import create_app
    from deltanet.serve.predictor import Predictor
    from deltanet.zoo import build_model

    model = build_model(model_name, input_shape=shape, num_classes=10)
    meta = {"model": model_name, "data": data, "input_shape": list(shape), "num_classes": 10}
    return TestClient(create_app(Predictor(model, meta)))


def test_a_28x28_model_gets_mnists_recipe():
    with _client_for("lenet5", "mnist", (1, 28, 28)) as c:
        assert c.get("/api/model").json()["recipe"] == "mnist"
        r = c.post("/api/inspect", content=draw_png("0"), headers=PNG).json()
        field = np.array(r["input"])
        assert field.shape == (28, 28) and np.array(r["saliency"]).shape == (28, 28)
        rows = np.flatnonzero(field.sum(axis=1))
        assert rows[-1] - rows[0] + 1 == 20  # the loop's height fitted into 20 of 28 rows
        assert [lay["shape"] for lay in r["layers"]][:3] == [[6, 28, 28]] * 2 + [[6, 14, 14]]


def test_a_model_of_sequences_takes_json_not_drawings():
    with _client_for("cnn1d", "mnist1d", (1, 40)) as c:
        assert c.get("/api/model").json()["recipe"] is None
        r = c.post("/api/predict", content=draw_png("1"), headers=PNG)
        assert r.status_code == 422 and "send a JSON array" in r.json()["error"]
        r = c.post("/api/predict", json=np.linspace(-1, 1, 40).tolist())
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 10


def test_a_bug_is_a_json_500_and_the_server_goes_on(predictor, monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from deltanet.serve.app import create_app

    app = create_app(predictor, runs_dir=tmp_path)
    with TestClient(app, raise_server_exceptions=False) as c:
        calls = []

        def broken(x):
            calls.append(1)
            if len(calls) == 1:
                raise IndexError("a bug")
            return predictor.__class__.predict(predictor, x)

        monkeypatch.setattr(predictor, "predict", broken)
        r = c.post("/api/predict", content=draw_png("1"), headers=PNG)
        assert r.status_code == 500 and r.json() == {"error": "internal error: IndexError: a bug"}
        assert c.post("/api/predict", content=draw_png("1"), headers=PNG).json()["label"] == "1"


def test_a_packed_model_is_inspected_without_saliency():
    from fastapi.testclient import TestClient

    from deltanet.binary import pack
    from deltanet.serve.app import create_app
    from deltanet.serve.predictor import Predictor
    from deltanet.zoo import build_model

    packed = pack(build_model("binary_lenet", input_shape=(1, 8, 8)).eval())
    meta = {"model": "binary_lenet", "data": "digits", "input_shape": [1, 8, 8]}
    with TestClient(create_app(Predictor(packed, meta))) as c:
        r = c.post("/api/inspect", content=draw_png("1"), headers=PNG).json()
        assert r["saliency"] is None and "inference-only" in r["saliency_error"]
        assert len(r["layers"]) == len(c.get("/api/model").json()["layers"])  # BN folded: 9
        assert len(r["probabilities"]) == 10
