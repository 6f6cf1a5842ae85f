"""Real Ray Serve, real HTTP on 127.0.0.1: predictions, validation, auth, overload, recovery."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray

import hqray.cluster
from hqray.data import load_dataset
from hqray.errors import CheckpointError, ConfigError
from hqray.ports import free_port
from hqray.serve import HqrayClient, ServeSettings, build_app
from hqray.serve.config import PROXY_TIMEOUT_MARGIN_S
from hqray.training import HybridClassifier, load_model, save_checkpoint

API_KEY = "test-key-7f3a"


@pytest.fixture(scope="module")
def thresholded_checkpoint(tmp_path_factory):
    """A g9 model (binary, decision threshold tuned in training), with its threshold moved
    so that, on some rows, thresholding and argmax give different classes."""
    data = load_dataset("breast_cancer")
    model = HybridClassifier("g9", epochs=2).fit(data.features, data.labels, list(data.feature_names))
    positive = model.predict_proba(data.features)[:, 1]
    model.threshold_ = float(np.quantile(positive, 0.25 if np.median(positive) > 0.5 else 0.75))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "cancer")


HEAVY_QUBITS, HEAVY_ROWS = 18, 384


@pytest.fixture(scope="module")
def heavy_checkpoint(tmp_path_factory):
    """A real model whose prediction of HEAVY_ROWS rows takes seconds (an 18-qubit circuit)."""
    rng = np.random.default_rng(0)
    model = HybridClassifier("g6", epochs=1, n_qubits=HEAVY_QUBITS, n_layers=1).fit(
        rng.normal(size=(16, HEAVY_QUBITS)), np.array([0, 1] * 8))
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "heavy")


@pytest.fixture(scope="module")
def circuit_checkpoint(tmp_path_factory):
    """A model on registered circuits the hand-written strategies do not run (IQP + QCNN)."""
    data = load_dataset("iris", task="multiclass")
    model = HybridClassifier("g6", epochs=3, options={"circuit": {"embedding": "iqp", "ansatz": "qcnn"}})
    return save_checkpoint(model.fit(data.features, data.labels), tmp_path_factory.mktemp("ckpt") / "qcnn")


@pytest.fixture(scope="module")
def kernel_checkpoint(tmp_path_factory):
    """A kernel family's model (IQP kernel SVM): no network weights, its training states kept."""
    from hqray.training.families import get_family

    data = load_dataset("iris", task="multiclass")
    model = get_family("iqp_kernel").build({"C": 10.0}, seed=0).fit(data.features, data.labels)
    model.feature_names_ = list(data.feature_names)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "kernel", family="iqp_kernel")


@pytest.fixture(scope="module")
def server(checkpoint, thresholded_checkpoint, heavy_checkpoint, circuit_checkpoint, kernel_checkpoint):
    from ray import serve

    hqray.cluster.connect(num_cpus=2, include_dashboard=False)
    port = free_port()
    # The apps' replicas share 2 CPUs: a quarter of one each (the QPU tier's asks for none), 2 in all.
    settings = ServeSettings(port=port, max_rows_per_request=50, max_body_bytes=20_000, replica_cpus=0.25)
    tiny = ServeSettings(port=port, max_ongoing_requests=1, max_queued_requests=1, batch_wait_timeout_s=1.5,
                         max_batch_size=64, replica_cpus=0.25)
    # A batch waits up to 0.5 s for company, so concurrent requests surely share one.
    patient = settings.model_copy(update={"batch_wait_timeout_s": 0.5})
    # A lone request waits 10 s for company in its batch, beyond its 2 s request timeout.
    slow = settings.model_copy(update={"batch_wait_timeout_s": 10.0, "max_batch_size": 64, "request_timeout_s": 2.0})
    qpu = settings.model_copy(update={"tier": "qpu"})
    autoscaled = ServeSettings(port=port, autoscaling=True, replicas=1, max_replicas=2, replica_cpus=0.25)
    heavy = ServeSettings(port=port, max_body_bytes=1_000_000, request_timeout_s=1.5, replica_cpus=0.25)
    iris = {"iris": str(checkpoint)}
    apps = {"main": build_app(iris, settings), "secure": build_app(iris, settings, api_key=API_KEY),
            "tiny": build_app(iris, tiny),
            # one app, three models: the thresholded g9, one on registered circuits (IQP + QCNN),
            # and a kernel family's
            "g9": build_app({"cancer": str(thresholded_checkpoint), "qcnn": str(circuit_checkpoint),
                             "kernel": str(kernel_checkpoint)}, settings),
            "patient": build_app(iris, patient), "slow": build_app(iris, slow), "qpu": build_app(iris, qpu),
            "autoscaled": build_app(iris, autoscaled),
            "heavy": build_app({"heavy": str(heavy_checkpoint)}, heavy)}
    serve.start(http_options=settings.http_options())
    # All apps deploy at once (one at a time took about a minute of this module's setup).
    serve.run_many([serve.RunTarget(app, name=name, route_prefix="/" if name == "main" else f"/{name}")
                    for name, app in apps.items()])
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as http:
        yield http, base
    serve.shutdown()
    ray.shutdown()


def post(http, path, body=None, content=None, headers=None):
    return http.post(path, json=body, content=content, headers=headers)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


class TestPredictions:
    def test_equal_load_model_predict_proba(self, server, checkpoint):
        http, _ = server
        rows = load_dataset("iris", task="multiclass").features[::10]
        response = post(http, "/v1/models/iris:predict", {"instances": rows.tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = load_model(checkpoint).predict_proba(rows)
        assert np.allclose(body["probabilities"], expected, atol=1e-6)
        assert body["predictions"] == [body["classes"][i] for i in expected.argmax(axis=1)]

    @pytest.mark.parametrize("name", ["qcnn", "kernel"])  # registered circuits (IQP + QCNN); a kernel family
    def test_models_beyond_the_hand_written_circuits_answer_as_they_load(self, server, name, request):
        http, _ = server
        model = load_model(request.getfixturevalue(f"{'circuit' if name == 'qcnn' else name}_checkpoint"))
        rows = load_dataset("iris", task="multiclass").features[::10]
        body = post(http, f"/g9/v1/models/{name}:predict", {"instances": rows.tolist()}).json()
        assert np.allclose(body["probabilities"], model.predict_proba(rows), atol=1e-6), body
        assert body["predictions"] == [str(label) for label in model.predict(rows)]

    def test_predictions_follow_the_models_decision_threshold(self, server, thresholded_checkpoint):
        http, _ = server
        model = load_model(thresholded_checkpoint)
        features = load_dataset("breast_cancer").features
        positive = model.predict_proba(features)[:, 1]
        # Rows between 0.5 and the threshold: argmax and the threshold disagree there.
        between = np.flatnonzero((positive - 0.5) * (positive - model.threshold_) < 0)[:25]
        rows = features[np.concatenate([between, np.arange(25)])]
        assert len(between) > 0
        body = post(http, "/g9/v1/models/cancer:predict", {"instances": rows.tolist()}).json()
        assert body["predictions"] == [str(label) for label in model.predict(rows)]
        assert body["predictions"] != [body["classes"][i] for i in np.asarray(body["probabilities"]).argmax(axis=1)]

    def test_concurrent_requests_share_one_model_call(self, server, checkpoint):
        http, base = server

        def served():
            return http.get("/patient/v1/models").json()["models"][0]["served_by_this_replica"]

        rows = load_dataset("iris", task="multiclass").features[:16]
        before = served()
        with HqrayClient(f"{base}/patient") as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda row: client.predict("iris", [row.tolist()]), rows))
        after = served()
        expected = load_model(checkpoint).predict_proba(rows)
        assert np.allclose([a["probabilities"][0] for a in answers], expected, atol=1e-6)  # each got its own row
        assert after["requests"] - before["requests"] == 16 and after["rows"] - before["rows"] == 16
        assert after["model_calls"] - before["model_calls"] <= 4, (before, after)

    def test_named_features(self, server, checkpoint):
        http, _ = server
        model = load_model(checkpoint)
        row = dict(zip(model.feature_names_, [5.1, 3.5, 1.4, 0.2], strict=True))
        body = post(http, "/v1/models/iris:predict", {"instances": [row]}).json()
        assert np.allclose(body["probabilities"], model.predict_proba([[5.1, 3.5, 1.4, 0.2]]), atol=1e-6)

    def test_models_and_health(self, server):
        http, _ = server
        models = http.get("/v1/models").json()["models"]
        assert models[0]["name"] == "iris" and models[0]["generation"] == "g6"
        assert models[0]["circuit_spec"]["n_qubits"] == 4 and len(models[0]["feature_names"]) == 4
        assert http.get("/healthz").json()["status"] == "ok"

    def test_concurrent_requests_are_answered(self, server):
        _, base = server
        with HqrayClient(base) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: client.predict("iris", [[5.0, 3.0, 1.0 + i / 10, 0.2]]), range(16)))
        assert all(len(r["probabilities"]) == 1 for r in results)


BAD_REQUESTS = [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
    ({"content": b"instances=1", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ({"body": {"instances": []}}, 422, "invalid_request"),
    ({"body": {"rows": [[1, 2, 3, 4]]}}, 422, "invalid_request"),
    ({"body": {"instances": [[1, 2, 3, 4]], "extra": 1}}, 422, "invalid_request"),
    ({"body": {"instances": [["1", 2, 3, 4]]}}, 422, "invalid_value"),
    ({"body": {"instances": [[[1], 2, 3, 4]]}}, 422, "invalid_value"),
    ({"body": {"instances": [[True, 2, 3, 4]]}}, 422, "invalid_value"),
    ({"content": b'{"instances": [[NaN, 2, 3, 4]]}', "headers": {"content-type": "application/json"}}, 422,
     "invalid_value"),
    ({"content": b'{"instances": [[1' + b"0" * 400 + b', 2, 3, 4]]}', "headers": {"content-type": "application/json"}},
     422, "invalid_value"),  # an integer beyond float64: a 422 naming it, not a 500
    ({"body": {"instances": [[1, 2, 3]]}}, 422, "wrong_width"),
    ({"body": {"instances": [{"sepal length (cm)": 1}]}}, 422, "wrong_features"),
    ({"body": {"instances": [[1, 2, 3, 4], {"a": 1}]}}, 422, "invalid_request"),
    ({"body": {"instances": [[1, 2, 3, 4]] * 51}}, 413, "too_many_rows"),
    ({"content": b'{"instances": [' + b"[1,2,3,4]," * 3000 + b"[1,2,3,4]]}",
      "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
]


class TestValidation:
    @pytest.mark.parametrize(("request_kwargs", "status", "code"), BAD_REQUESTS)
    def test_bad_input_gets_its_4xx_and_the_schema(self, server, request_kwargs, status, code):
        http, _ = server
        assert_error(post(http, "/v1/models/iris:predict", **request_kwargs), status, code)
        assert post(http, "/v1/models/iris:predict", {"instances": [[5, 3, 1, 0.2]]}).status_code == 200

    def test_messages_name_the_bad_value(self, server):
        http, _ = server
        error = assert_error(post(http, "/v1/models/iris:predict", {"instances": [[1, 2, 3]]}), 422, "wrong_width")
        assert error["message"] == "instances[0]: expected 4 features, got 3"
        error = assert_error(post(http, "/v1/models/iris:predict", {"instances": [[1, "x", 3, 4]]}), 422,
                             "invalid_value")
        assert error["message"] == "instances[0][1]: expected a finite number, got 'x'"

    def test_unknown_model(self, server):
        http, _ = server
        assert_error(post(http, "/v1/models/digits:predict", {"instances": [[1, 2, 3, 4]]}), 404, "unknown_model")

    def test_routing_errors_use_the_error_schema(self, server):
        http, _ = server
        error = assert_error(http.get("/v1/models/iris:predict"), 405, "method_not_allowed")
        assert error["message"] == "method GET is not allowed on /v1/models/iris:predict; allowed: POST"
        error = assert_error(http.get("/v1/nowhere"), 404, "not_found")
        assert error["message"] == "no route GET /v1/nowhere"
        assert_error(http.delete("/healthz"), 405, "method_not_allowed")

    @pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/secure/docs", "/secure/openapi.json"])
    def test_no_interactive_docs_or_schema_answer_without_a_key(self, server, path):
        http, _ = server
        assert_error(http.get(path), 404, "not_found")


class TestApiKey:
    def test_key_required_on_v1_when_configured(self, server):
        http, _ = server
        body = {"instances": [[5, 3, 1, 0.2]]}
        assert_error(post(http, "/secure/v1/models/iris:predict", body), 401, "unauthorized")
        assert_error(post(http, "/secure/v1/models/iris:predict", body, headers={"x-api-key": "wrong"}), 401,
                     "unauthorized")
        assert_error(http.get("/secure/v1/models"), 401, "unauthorized")
        ok = post(http, "/secure/v1/models/iris:predict", body, headers={"x-api-key": API_KEY})
        assert ok.status_code == 200
        assert http.get("/secure/healthz").status_code == 200

    def test_open_app_needs_no_key(self, server):
        http, _ = server
        assert http.get("/v1/models").status_code == 200

    def test_keys_never_appear_in_logs(self, server):
        """Requests with the right and a wrong key leave access-log lines in the Ray session's
        logs (proxy, replicas, controller, workers), and neither key in any of them."""
        http, _ = server
        wrong_key = "wrong-key-c41e9b"
        body = {"instances": [[5, 3, 1, 0.2]]}
        answers = [post(http, "/secure/v1/models/iris:predict", body, headers={"x-api-key": key})
                   for key in (API_KEY, wrong_key)]
        assert [answer.status_code for answer in answers] == [200, 401]
        request_ids = [answer.headers["x-request-id"].encode() for answer in answers]
        logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())

        def log_text() -> bytes:
            return b"\n".join(path.read_bytes() for path in logs.rglob("*") if path.is_file())

        # Serve writes a request's access-log line (with its request id) once it is answered;
        # wait for both, so the scan reads the logs that would hold a leaked key.
        deadline = time.monotonic() + 90
        while not all(rid in (text := log_text()) for rid in request_ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert all(rid in text for rid in request_ids), f"no access-log lines for {request_ids} under {logs}"
        assert API_KEY.encode() not in text and wrong_key.encode() not in text

    def test_a_checkpoint_naming_a_users_module_is_refused_before_deploying_without_trust(self, checkpoint,
                                                                                            tmp_path):
        copy = tmp_path / "ckpt"
        shutil.copytree(checkpoint, copy)
        metadata = json.loads((copy / "metadata.json").read_text())
        metadata["config"]["circuit"]["ansatz"] = "t_never_imported:ladder"
        (copy / "metadata.json").write_text(json.dumps(metadata))
        with pytest.raises(CheckpointError, match="trust_code=True") as refused:
            build_app({"user": str(copy)}, ServeSettings())
        assert "t_never_imported" in str(refused.value) and "t_never_imported" not in sys.modules

    def test_non_loopback_bind_requires_a_key(self, checkpoint):
        with pytest.raises(ConfigError, match="set an API key"):
            build_app({"iris": str(checkpoint)}, ServeSettings(host="0.0.0.0"))


def test_benchmark_load_generator_speaks_http_to_the_server(server):
    """`hqray bench serve` measures through HttpConnection: one keep-alive connection gets
    the same answers httpx gets, errors included."""
    import asyncio
    import json

    from hqray.benchmarks.serve import HttpConnection

    http, base = server
    port = int(base.rsplit(":", 1)[1])
    row = [5.1, 3.5, 1.4, 0.2]

    async def exchange():
        connection = await HttpConnection.open("127.0.0.1", port)
        try:
            answers = [await connection.post("/v1/models/iris:predict", json.dumps({"instances": [row]}).encode())
                       for _ in range(3)]
            answers.append(await connection.post("/v1/models/iris:predict", b"{not json"))
        finally:
            await connection.close()
        return answers

    *good, bad = asyncio.run(exchange())
    expected = post(http, "/v1/models/iris:predict", {"instances": [row]}).json()
    assert all(status == 200 and json.loads(body) == expected for status, body in good)
    assert bad[0] == 400 and json.loads(bad[1])["error"]["code"] == "malformed_json"


class TestResources:
    def test_a_qpu_tier_replica_holds_a_qpu_and_answers(self, server, checkpoint):
        http, _ = server
        # Only the qpu app's replica asks for QPU in this Ray session (4 virtual QPUs).
        assert ray.cluster_resources()["QPU"] - ray.available_resources().get("QPU", 0) == 1
        rows = load_dataset("iris", task="multiclass").features[:3]
        body = post(http, "/qpu/v1/models/iris:predict", {"instances": rows.tolist()}).json()
        assert np.allclose(body["probabilities"], load_model(checkpoint).predict_proba(rows), atol=1e-6)

    def test_an_autoscaled_app_starts_at_its_minimum_and_answers(self, server):
        from ray import serve

        http, _ = server
        deployment = serve.status().applications["autoscaled"].deployments["Gateway"]
        assert deployment.status == "HEALTHY" and deployment.replica_states == {"RUNNING": 1}
        assert post(http, "/autoscaled/v1/models/iris:predict", {"instances": [[5, 3, 1, 0.2]]}).status_code == 200


def test_a_prediction_past_the_request_timeout_is_a_504_even_if_the_client_asks_for_longer(server):
    """The Gateway enforces request_timeout_s itself: Serve's x-request-timeout-seconds header
    raises only the proxy's cut-off. The answer keeps the error schema; the server stays healthy."""
    http, _ = server
    started = time.monotonic()
    response = post(http, "/slow/v1/models/iris:predict", {"instances": [[5, 3, 1, 0.2]]},
                    headers={"x-request-timeout-seconds": "60"})
    elapsed = time.monotonic() - started
    error = assert_error(response, 504, "timeout")
    assert error["message"] == "no prediction within request_timeout_s (2 s)"
    assert 2.0 <= elapsed < 6.0, elapsed  # at the 2 s timeout, not after the 10 s batch wait
    assert post(http, "/v1/models/iris:predict", {"instances": [[5, 3, 1, 0.2]]}).status_code == 200


def test_health_and_the_504_answer_while_a_model_computes_for_seconds(server, heavy_checkpoint):
    """Model calls run off the replica's event loop: while one takes seconds, /healthz answers
    and the request's own 504 fires at its timeout, before the model could have finished."""
    http, base = server
    rows = np.random.default_rng(1).normal(size=(HEAVY_ROWS, HEAVY_QUBITS)).round(4).tolist()
    model = load_model(heavy_checkpoint)
    started = time.monotonic()
    model.predict_proba(np.asarray(rows))
    model_seconds = time.monotonic() - started  # the model's real duration, measured here
    assert model_seconds > 1.5 * 1.5, model_seconds  # it does take seconds, beyond the 1.5 s timeout

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(lambda: httpx.post(f"{base}/heavy/v1/models/heavy:predict", json={"instances": rows},
                                                 timeout=60))
        health = []
        while not pending.done() and time.monotonic() - started < 60:
            health.append(http.get("/heavy/healthz").status_code)
        response = pending.result()
        elapsed = time.monotonic() - started
    assert health and set(health) == {200}, health  # answered while the prediction was outstanding
    assert_error(response, 504, "timeout")
    assert elapsed < model_seconds, (elapsed, model_seconds)


def test_chunked_and_declared_bodies_over_the_limit_get_413(server):
    http, _ = server
    chunk = b'{"instances": [' + b"[1,2,3,4]," * 100

    def chunks():  # no content-length: the body is refused while it streams in
        yield chunk
        for _ in range(200):
            yield b"[1,2,3,4]," * 100
        yield b"[1,2,3,4]]}"

    response = http.post("/v1/models/iris:predict", content=chunks(), headers={"content-type": "application/json"})
    error = assert_error(response, 413, "body_too_large")
    assert "exceeds 20000" in error["message"]


@pytest.mark.parametrize("body", [b'{"instances": [[' + b"1" * 5000 + b', 2, 3, 4]]}',
                                  b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"])
def test_huge_integers_and_deep_nesting_are_400_not_500(server, body):
    http, _ = server
    response = http.post("/heavy/v1/models/heavy:predict", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "malformed_json")


def test_api_key_variables_that_are_unset_or_empty_are_errors(server, checkpoint, monkeypatch):
    from hqray.serve import app_builder

    args = {"checkpoints": {"iris": str(checkpoint)}, "api_key_env": "HQRAY_TEST_KEY"}
    monkeypatch.delenv("HQRAY_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="api_key_env HQRAY_TEST_KEY: the variable is not set or empty"):
        app_builder(args)
    monkeypatch.setenv("HQRAY_TEST_KEY", "")
    with pytest.raises(ConfigError, match="not set or empty"):
        app_builder(args)
    monkeypatch.setenv("HQRAY_TEST_KEY", API_KEY)
    assert app_builder(args) is not None


def test_the_key_rule_follows_the_proxy_serve_really_runs(server, checkpoint):
    from hqray.serve import running_http_options, serve_checkpoints

    _, base = server
    running = running_http_options()
    assert running == {"host": "127.0.0.1", "port": int(base.rsplit(":", 1)[1])}
    # Serve keeps its own HTTP options: asking for another port is refused, not silently ignored.
    refusal = f"Serve already runs on this Ray with its proxy on 127.0.0.1:{running['port']},"
    with pytest.raises(ConfigError, match=refusal):
        serve_checkpoints({"iris": str(checkpoint)}, ServeSettings(port=running["port"] + 1))
    # A proxy bound beyond loopback needs the key whatever the settings say.
    with pytest.raises(ConfigError, match="the HTTP proxy binds '0.0.0.0', beyond this machine"):
        build_app({"iris": str(checkpoint)}, ServeSettings(), bound_host="0.0.0.0")
    assert build_app({"iris": str(checkpoint)}, ServeSettings(), api_key=API_KEY, bound_host="0.0.0.0") is not None


def test_overload_answers_503_fast(server):
    _, base = server

    def call(_):
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{base}/tiny/v1/models/iris:predict", json={"instances": [[5, 3, 1, 0.2]]})
        return response.status_code, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    rejected = [seconds for status, seconds in results if status == 503]
    assert rejected, results
    assert max(rejected) < 1.5  # rejected at once, not after the 1.5 s batch wait
    assert any(status == 200 for status, _ in results)


def test_a_killed_replica_is_replaced_and_traffic_resumes(server):
    from ray import serve

    http, _ = server
    body = {"instances": [[5, 3, 1, 0.2]]}
    handle = serve.get_deployment_handle("Gateway", app_name="main")
    before = handle.replica_info.remote().result()
    ray.kill(ray.get_actor(before["actor_name"], namespace="serve"), no_restart=True)
    # A request caught by the kill may wait out the proxy's cut-off (request_timeout_s + margin,
    # 31 s) and get its 504: the client waits longer than that, and the deadline leaves room after it.
    patience = ServeSettings().request_timeout_s + PROXY_TIMEOUT_MARGIN_S + 30
    statuses, deadline = [], time.monotonic() + 150
    while time.monotonic() < deadline:
        statuses.append(http.post("/v1/models/iris:predict", json=body, timeout=patience).status_code)
        if statuses[-3:] == [200, 200, 200]:
            break
        time.sleep(0.2)
    assert statuses[-3:] == [200, 200, 200], statuses
    assert handle.replica_info.remote().result()["pid"] != before["pid"]  # a new replica answers
