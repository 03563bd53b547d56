"""Load: 500 predictions from 8 concurrent clients against a real uvicorn server, every answer
checked against the single-threaded one; prints the latency percentiles.

    python -m pytest -q tests/serve/test_load.py
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

REQUESTS, CLIENTS = 500, 8


def test_500_predictions_from_8_clients(live_server, predictor, digits_test, capsys):
    url, _ = live_server
    x = digits_test[0]
    bodies = [x[i % len(x), 0].tolist() for i in range(REQUESTS)]  # different digits
    expected = predictor.predict(x)  # one batch, single-threaded
    latencies: list[float] = []
    answers: dict[int, dict] = {}
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(k, REQUESTS, CLIENTS):
                start = time.perf_counter()
                r = http.post("/api/predict", json=bodies[i])
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    answers[i] = r.json() if r.status_code == 200 else {"error": r.text}

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    assert len(answers) == REQUESTS
    for i, answer in answers.items():
        want = expected[i % len(x)]
        assert answer.get("class") == int(np.argmax(want)), (i, answer)
        np.testing.assert_allclose(answer["probabilities"], want, atol=2e-6)
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    with capsys.disabled():
        print(
            f"\nload: {REQUESTS} predictions from {CLIENTS} clients in {wall:.2f} s "
            f"({REQUESTS / wall:.0f}/s): latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
