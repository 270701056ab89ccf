"""Shadow parity in a real `vitrt serve` on 127.0.0.1: sampling, drops under load, the three breach policies, the
parity endpoint and metrics, the keep folder and `vitrt parity --replay`.

The primary of the breaching models is the tiny digits model with a perturbed output bias, shadowed by the
original export: the same inputs, outputs 0.05 apart, far over the FP32 budget. Tests wait on the endpoint's
long-poll (`?wait_for=N`), never on sleeps.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import stat
import subprocess
import sys

import httpx
import numpy as np
import pytest
import yaml
from serve_support import HAVE_EXPORTER, SRC, build_arith, free_port, metric, scrape, start_server

from vitrt.cli import main

BIAS_SHIFT = 0.05
SEED = 7
RATE = 0.5


def _perturbed(source, target, initializer: str, shift: float):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(source))
    for init in proto.graph.initializer:
        if init.name == initializer:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(shift), init.name))
            break
    else:
        raise AssertionError(f"no initializer {initializer!r}")
    onnx.save(proto, str(target))
    return target


def _slow_reference(source, target, layers: int = 16, width: int = 1536):
    """The tiny model plus a heavy input-dependent branch whose result is multiplied by zero: the same outputs,
    tens of milliseconds per run, so a queue of one fills up."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(source))
    graph = proto.graph
    rng = np.random.default_rng(0)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1, 768], np.int64), "slow_shape"),
            numpy_helper.from_array((rng.standard_normal((768, width)) / 28).astype(np.float32), "slow_w0"),
            numpy_helper.from_array((rng.standard_normal((width, width)) / width**0.5).astype(np.float32), "slow_w"),
            numpy_helper.from_array(np.zeros((1, 1), np.float32), "slow_zero"),
        ]
    )
    old_output = graph.output[0].name
    graph.node[-1].output[0] = "fast_logits"
    nodes = [
        helper.make_node("Reshape", ["input", "slow_shape"], ["slow_x"]),
        helper.make_node("MatMul", ["slow_x", "slow_w0"], ["slow_h0"]),
    ]
    for i in range(layers):
        nodes += [
            helper.make_node("MatMul", [f"slow_h{i}", "slow_w"], [f"slow_m{i}"]),
            helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_h{i + 1}"]),
        ]
    nodes += [
        helper.make_node("ReduceSum", [f"slow_h{layers}"], ["slow_sum"], keepdims=1),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["fast_logits", "slow_nothing"], [old_output]),
    ]
    graph.node.extend(nodes)
    del graph.value_info[:]
    onnx.checker.check_model(proto)
    onnx.save(proto, str(target))
    assert TensorProto.FLOAT  # the graph keeps its FP32 input and output
    return target


def _failing_reference(target):
    """Same input and output as the tiny model, but its Reshape to 769 columns fails inside ONNX Runtime."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["input", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "failing",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 769], np.int64), "shape"),
            numpy_helper.from_array(np.zeros((769, 10), np.float32), "w"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(target))
    return target


def _ort_logits(path, x):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def _digits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def _infer(client, model: str, x: np.ndarray, request_id: str | None = None) -> np.ndarray:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    if request_id:
        body["id"] = request_id
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], np.float32).reshape(out["shape"])


def _parity(client, model: str, wait_for: int | None = None) -> dict:
    params = {} if wait_for is None else {"wait_for": wait_for, "timeout_s": 30}
    response = client.get(f"/v2/models/{model}/parity", params=params)
    assert response.status_code == 200, response.text
    summary = response.json()
    if wait_for is not None:
        assert summary["wait"]["reached"], summary
    return summary


@pytest.fixture(scope="module")
def shadow_models(tiny_digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shadow-models")
    tiny = tiny_digits[1]
    return {
        "tiny": tiny,
        "perturbed": _perturbed(tiny, folder / "perturbed.onnx", "3.bias", BIAS_SHIFT),
        "slow": _slow_reference(tiny, folder / "slow.onnx"),
        "failing": _failing_reference(folder / "failing.onnx"),
        "keep": folder / "keep",
    }


@pytest.fixture(scope="module")
def shadow_server(shadow_models, tmp_path_factory):
    m = shadow_models
    one_thread = {"intra_op_threads": 1}

    def entry(name, artifact, reference, **shadow):
        return {
            "name": name,
            "artifact": str(artifact),
            "max_batch_size": 8,
            "backend_options": one_thread,
            "shadow": {"reference": str(reference), "backend_options": one_thread, **shadow},
        }

    config = {
        "models": [
            {"name": "plain", "artifact": str(m["tiny"]), "backend_options": one_thread},
            entry("same", m["tiny"], m["tiny"], rate=RATE, seed=SEED, policy="unready", window=64),
            entry(
                "unready",
                m["perturbed"],
                m["tiny"],
                rate=1.0,
                window=4,
                policy="unready",
                keep=str(m["keep"]),
                keep_max=2,
            ),
            entry("logged", m["perturbed"], m["tiny"], rate=1.0, policy="log"),
            entry("fallback", m["perturbed"], m["tiny"], rate=1.0, policy="fallback"),
            entry("slow", m["tiny"], m["slow"], rate=1.0, queue_size=1, threads=1),
            entry("failing", m["tiny"], m["failing"], rate=1.0),
        ]
    }
    path = tmp_path_factory.mktemp("shadow-config") / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = path.parent / "server.log"
    server = start_server(["--config", str(path)], log_path)
    yield server
    assert server.stop() == 0, server.log_text()[-3000:]


@pytest.fixture
def client(shadow_server):
    with httpx.Client(base_url=shadow_server.url, timeout=60.0) as http:
        yield http


def test_sampling_is_seeded_and_a_matching_reference_passes(client, shadow_models):
    x = _digits(20)
    for i in range(20):
        _infer(client, "same", x[i : i + 1])
    draws = random.Random(SEED)
    expected = sum(draws.random() < RATE for _ in range(20))
    assert 0 < expected < 20
    summary = _parity(client, "same", wait_for=expected)
    counters = summary["counters"]
    assert counters["sampled"] == expected and counters["compared"] == expected and counters["dropped"] == 0
    assert not summary["breached"] and summary["window"]["passed"] and summary["ready"]
    logits = summary["window"]["outputs"]["logits"]
    assert logits["max_abs"] == 0.0 and logits["top1_agreement"] == 1.0 and not logits["failures"]
    stats = summary["window"]["inputs"]["input"]
    assert len(stats["channel_mean"]) == 3 and all(abs(v) < 0.5 for v in stats["channel_mean"])
    assert stats["export"] == {"normalize_mean": [0.5, 0.5, 0.5], "normalize_std": [0.5, 0.5, 0.5]}
    assert client.get("/v2/models/same/ready").status_code == 200

    values = scrape(client)
    labels = {"model": "same", "version": "1"}
    assert metric(values, "vitrt_shadow_sampled_total", **labels) == expected
    assert metric(values, "vitrt_shadow_compared_total", **labels) == expected
    assert metric(values, "vitrt_shadow_breached", **labels) == 0
    assert metric(values, "vitrt_shadow_window_max_abs", **labels, output="logits") == 0.0
    assert metric(values, "vitrt_shadow_window_top1_agreement", **labels, output="logits") == 1.0
    assert metric(values, "vitrt_shadow_max_abs_error_count", **labels) == expected
    assert metric(values, "vitrt_shadow_max_abs_error_bucket", **labels, le="1e-06") == expected
    assert ("vitrt_shadow_sampled_total", frozenset({"model": "plain", "version": "1"}.items())) not in values


def test_unready_policy_flips_readiness_keeps_inputs_and_resets(client, shadow_models, shadow_server):
    x = _digits(4, seed=1)
    _infer(client, "unready", x[:1], request_id="bad-0")
    summary = _parity(client, "unready", wait_for=1)
    # Detected within the first window: the very first compared request is over budget.
    assert summary["breached"] and not summary["ready"] and not summary["model_ready"]
    assert any("max abs 0.05" in f for f in summary["breach_failures"])
    assert summary["worst"][0]["request_id"] == "bad-0" and summary["worst"][0]["max_abs"] == pytest.approx(
        0.05, abs=1e-5
    )
    assert client.get("/v2/models/unready/ready").status_code == 400
    assert client.get("/v2/health/ready").status_code == 400
    assert client.get("/v2/models/same/ready").status_code == 200
    _infer(client, "unready", x[1:2], request_id="bad-1")  # not ready still answers: the balancer decides
    for i in (2, 3):
        _infer(client, "unready", x[i : i + 1], request_id=f"bad-{i}")
    summary = _parity(client, "unready", wait_for=4)
    assert summary["counters"]["over_budget"] == 4 and summary["counters"]["breaches"] == 1
    labels = {"model": "unready", "version": "1"}
    values = scrape(client)
    assert metric(values, "vitrt_shadow_breached", **labels) == 1
    assert metric(values, "vitrt_shadow_breaches_total", **labels) == 1
    assert metric(values, "vitrt_shadow_window_max_abs", **labels, output="logits") == pytest.approx(0.05, abs=1e-5)

    keep = shadow_models["keep"]
    assert stat.S_IMODE(keep.stat().st_mode) == 0o700
    index = json.loads((keep / "shadow.json").read_text())
    assert [e["request_id"] for e in index["entries"]] == ["bad-2", "bad-3"]  # keep_max 2: the newest stay
    assert sorted(p.name for p in keep.glob("*.npz")) == [e["file"] for e in index["entries"]]
    assert index["primary"]["artifact"] == str(shadow_models["perturbed"])
    with np.load(keep / index["entries"][0]["file"]) as kept:
        np.testing.assert_array_equal(kept["input:input"], x[2:3])
        assert np.abs(kept["primary:logits"] - kept["reference:logits"]).max() == pytest.approx(0.05, abs=1e-5)

    reset = client.post("/v2/models/unready/parity/reset")
    assert reset.status_code == 200 and not reset.json()["breached"] and reset.json()["window"]["compared"] == 0
    assert client.get("/v2/models/unready/ready").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200

    # The alert's replay: the kept inputs through the primary and the reference again.
    replay = subprocess.run(
        [sys.executable, "-m", "vitrt", "parity", "--replay", str(keep), "--report", str(keep.parent / "replay")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"},
        timeout=300,
    )
    assert replay.returncode == 3, replay.stderr
    assert replay.stderr.strip().splitlines()[-1].startswith("error: replay over budget: bad-2: max abs 0.05")
    assert "Traceback" not in replay.stderr and "bad-3" in replay.stdout
    report = json.loads((keep.parent / "replay.json").read_text())
    assert [r["request_id"] for r in report["requests"]] == ["bad-2", "bad-3"]
    assert all(r["reproduced_max_abs"] == 0.0 and not r["passed"] for r in report["requests"])


def test_log_policy_names_the_offending_requests(client, shadow_server):
    _infer(client, "logged", _digits(1, seed=2), request_id="drifted-7")
    summary = _parity(client, "logged", wait_for=1)
    assert summary["breached"] and summary["ready"]
    assert client.get("/v2/models/logged/ready").status_code == 200
    entry = shadow_server.wait_for_log(lambda e: e.get("message") == "shadow parity breach" and e["model"] == "logged")
    assert entry["level"] == "warning" and entry["policy"] == "log" and "drifted-7" in entry["request_ids"]
    assert "max abs 0.05" in entry["failures"]


def test_fallback_policy_serves_the_reference_until_reset(client, shadow_models):
    x = _digits(2, seed=3)
    primary = _ort_logits(shadow_models["perturbed"], x)
    reference = _ort_logits(shadow_models["tiny"], x)
    np.testing.assert_allclose(_infer(client, "fallback", x), primary, atol=1e-6)
    summary = _parity(client, "fallback", wait_for=1)
    assert summary["breached"] and summary["serving_reference"] and summary["ready"]
    np.testing.assert_allclose(_infer(client, "fallback", x), reference, atol=1e-6)
    summary = _parity(client, "fallback")
    assert summary["counters"]["fallback_requests"] == 1 and summary["counters"]["sampled"] == 1
    assert metric(scrape(client), "vitrt_shadow_fallback_requests_total", model="fallback", version="1") == 1
    assert client.post("/v2/models/fallback/parity/reset").status_code == 200
    np.testing.assert_allclose(_infer(client, "fallback", x), primary, atol=1e-6)


def test_a_full_queue_drops_samples_and_never_slows_or_fails_requests(shadow_server, shadow_models):
    x = _digits(48, seed=4)
    expected = _ort_logits(shadow_models["tiny"], x)

    def send(i):
        with httpx.Client(base_url=shadow_server.url, timeout=60.0) as http:
            return i, _infer(http, "slow", x[i : i + 1])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(len(x))))
    for i, logits in results:
        np.testing.assert_allclose(logits, expected[i : i + 1], atol=1e-5)
    with httpx.Client(base_url=shadow_server.url, timeout=60.0) as http:
        counters = _parity(http, "slow")["counters"]
        assert counters["sampled"] == len(x) and counters["dropped"] > 0
        summary = _parity(http, "slow", wait_for=counters["sampled"] - counters["dropped"])
        assert summary["counters"]["compared"] + summary["counters"]["dropped"] == len(x)
        assert summary["window"]["passed"] and summary["window"]["outputs"]["logits"]["max_abs"] < 1e-5
        values = scrape(http)
        assert metric(values, "vitrt_shadow_dropped_total", model="slow", version="1") == counters["dropped"]


def test_a_failing_reference_is_counted_and_never_fails_requests(client, shadow_models, shadow_server):
    x = _digits(2, seed=5)
    np.testing.assert_allclose(_infer(client, "failing", x), _ort_logits(shadow_models["tiny"], x), atol=1e-6)
    summary = _parity(client, "failing", wait_for=1)
    assert summary["counters"]["errors"] == 1 and summary["counters"]["compared"] == 0 and not summary["breached"]
    entry = shadow_server.wait_for_log(lambda e: e.get("message") == "shadow reference failed")
    assert entry["model"] == "failing" and entry["level"] == "warning"
    assert metric(scrape(client), "vitrt_shadow_errors_total", model="failing", version="1") == 1


def test_queued_samples_are_compared_as_one_batch_and_offenders_alone(shadow_models):
    """Samples queued before the worker starts are taken as one reference batch: a passing batch is one window
    entry naming all its requests; a batch with a request over budget is compared again request by request."""
    from vitrt.engines import load
    from vitrt.serve.config import ShadowConfig
    from vitrt.serve.shadow import ShadowMonitor

    tiny = shadow_models["tiny"]
    x = _digits(8, seed=5)
    logits = _ort_logits(tiny, x)
    config = ShadowConfig(reference=str(tiny), rate=1.0, cpu_share=1.0, window=64)

    def run(offsets: list[float]) -> dict:
        monitor = ShadowMonitor("m", config, load(tiny, backend="onnxruntime", intra_op_threads=1))
        for i, shift in enumerate(offsets):
            assert monitor.offer(f"r{i}", {"input": x[i : i + 1]}, {"logits": logits[i : i + 1] + shift})
        monitor.start()
        try:
            assert monitor.wait_for(len(offsets), 30)
            return monitor.summary()
        finally:
            monitor.stop()
            monitor.close()

    passing = run([0.0] * 6)
    assert passing["counters"]["compared"] == 6 and passing["window"]["compared"] == 6
    assert [w["request_ids"] for w in passing["worst"]] == [[f"r{i}" for i in range(6)]]
    assert passing["breached"] is False

    mixed = run([0.0, BIAS_SHIFT, 0.0, BIAS_SHIFT])
    assert mixed["counters"]["compared"] == 4 and mixed["counters"]["over_budget"] == 2
    assert sorted(w["request_id"] for w in mixed["worst"][:2]) == ["r1", "r3"]
    assert all(len(w["request_ids"]) == 1 for w in mixed["worst"])
    assert mixed["breached"] is True


def test_parity_endpoint_refuses_bad_requests_with_json(client):
    no_shadow = client.get("/v2/models/plain/parity")
    assert no_shadow.status_code == 400 and "has no shadow parity" in no_shadow.json()["error"]
    assert client.post("/v2/models/plain/parity/reset").status_code == 400
    assert client.get("/v2/models/nope/parity").status_code == 404
    for params in ({"wait_for": -1}, {"wait_for": "x"}, {"wait_for": 1, "timeout_s": 1000}, {"timeout_s": 0}):
        response = client.get("/v2/models/same/parity", params=params)
        assert response.status_code == 400, params
        assert "error" in response.json()
    schema = client.get("/openapi.json").json()
    assert "/v2/models/{model_name}/parity" in schema["paths"]
    assert "/v2/models/{model_name}/parity/reset" in schema["paths"]


def test_nonfinite_outputs_breach_and_the_summary_stays_json(shadow_models):
    """In-process, on the real ONNX Runtime backend: a primary answer with NaN is a breach of its own kind, and the
    window's figures (NaN there) still serialise as strict JSON."""
    from vitrt.engines import load
    from vitrt.serve.config import ShadowConfig
    from vitrt.serve.shadow import ShadowMonitor

    monitor = ShadowMonitor(
        "m", ShadowConfig(reference=str(shadow_models["tiny"]), rate=1.0), load(shadow_models["tiny"])
    )
    monitor.start()
    try:
        x = _digits(2, seed=6)
        served = _ort_logits(shadow_models["tiny"], x)
        served[1, 3] = np.nan
        assert monitor.offer("nan-1", {"input": x}, {"logits": served})
        assert monitor.wait_for(1, 30.0)
        summary = monitor.summary()
        assert summary["breached"] and summary["counters"]["nonfinite"] == 1
        assert "logits: non-finite outputs (NaN or Inf)" in summary["breach_failures"]
        assert summary["worst"][0] == {**summary["worst"][0], "request_id": "nan-1", "max_abs": None}
        json.dumps(summary, allow_nan=False)
        assert all(v is None or np.isfinite(v) for v in monitor.snapshot()["counters"].values() if isinstance(v, float))
    finally:
        monitor.stop()
        monitor.close()
    assert not monitor.offer("late", {"input": x}, {"logits": served})  # stopped: nothing is queued any more


# ---- refusing to start ------------------------------------------------------------------------------------------


def _serve(capsys, args):
    """Exit code and the last stderr line (model loading logs JSON lines to stderr before the error)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *args, "--port", str(free_port())])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shadow-rate", "1.5"], "models.0.shadow.rate: Input should be less than or equal to 1"),
        (["--shadow-rate", "-0.1"], "models.0.shadow.rate: Input should be greater than or equal to 0"),
        (["--shadow-policy", "panic"], "models.0.shadow.policy: Input should be 'log', 'unready' or 'fallback'"),
        (["--shadow-budget", "max_abs=abc"], "--shadow-budget expects FIELD=NUMBER"),
        (["--shadow-budget", "colour=1"], "unknown budget field 'colour'"),
        (["--shadow-precision", "fp8"], "models.0.shadow.precision"),
        (["--shadow-cpu-share", "0"], "models.0.shadow.cpu_share: Input should be greater than 0"),
    ],
)
def test_bad_shadow_flags_are_refused_in_one_line(capsys, shadow_models, flags, message):
    tiny = str(shadow_models["tiny"])
    code, err = _serve(capsys, [tiny, "--shadow", tiny, *flags])
    assert code == 2 and err.startswith("error: ") and message in err, err


def test_unusable_references_and_keep_folders_are_refused(capsys, shadow_models, tmp_path):
    tiny = str(shadow_models["tiny"])
    code, err = _serve(capsys, [tiny, "--shadow-rate", "0.5"])
    assert code == 2 and "--shadow-* options need --shadow REFERENCE" in err
    arith = build_arith(tmp_path / "arith.onnx")
    code, err = _serve(capsys, [tiny, "--name", "digits", "--shadow", str(arith)])
    assert code == 2 and err.startswith("error: model 'digits': shadow reference input names")
    code, err = _serve(capsys, [tiny, "--shadow", str(tmp_path / "missing.onnx")])
    assert code == 2 and "artifact not found" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = _serve(capsys, [tiny, "--shadow", tiny, "--shadow-keep", str(blocker / "keep")])
    assert code == 2 and "--shadow-keep" in err and "not a writable folder" in err
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "m", "artifact": tiny}]}))
    code, err = _serve(capsys, ["--config", str(config), "--shadow", tiny])
    assert code == 2 and "set per-model options" in err


def test_replay_refuses_a_folder_without_an_index(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["parity", "--replay", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is not a shadow keep folder" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["parity", "--model", "agent_digits"])
    assert exit_info.value.code == 2 and "give --model and --artifact" in capsys.readouterr().err


# ---- the bundled demo model: a drifting block found from the alert ----------------------------------------------


@pytest.mark.skipif(not HAVE_EXPORTER, reason="needs the ONNX exporter (vitrt.export)")
def test_demo_model_breach_is_replayed_to_the_drifting_block(tmp_path_factory):
    """agent_digits exported by vitrt with one block's MLP bias perturbed, served and shadowed by the PyTorch model
    itself; the alert's kept inputs replayed with `vitrt parity --replay` name that block as the first divergent."""
    import onnx

    from vitrt.data.digits import digits_batch
    from vitrt.engines.onnx_graph import model_metadata
    from vitrt.export import export_zoo_model

    folder = tmp_path_factory.mktemp("shadow-demo")
    exported = export_zoo_model("agent_digits", folder / "agent_digits.onnx").path
    broken = _perturbed(exported, folder / "agent_broken.onnx", "layers.1.blocks.0.mlp.fc1.bias", 0.5)
    keep = folder / "keep"
    server = start_server(
        [
            str(broken),
            "--name",
            "agent",
            "--backend-option",
            "intra_op_threads=1",
            "--shadow",
            "agent_digits",
            "--shadow-backend",
            "torch",
            "--shadow-rate",
            "1",
            "--shadow-policy",
            "unready",
            "--shadow-keep",
            str(keep),
        ],
        folder / "server.log",
        timeout=180.0,
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            images, _ = digits_batch(model_metadata(onnx.load(str(broken))), "test", limit=4)
            _infer(client, "agent", images, request_id="camera-3")
            summary = _parity(client, "agent", wait_for=1)
            assert summary["breached"] and summary["reference"]["backend"] == "torch"
            assert client.get("/v2/models/agent/ready").status_code == 400
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]

    replay = subprocess.run(
        [sys.executable, "-m", "vitrt", "parity", "--replay", str(keep), "--report", str(folder / "replay.json")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "200"},
        timeout=600,
    )
    assert replay.returncode == 3, replay.stderr[-3000:]
    last = replay.stderr.strip().splitlines()[-1]
    assert last.startswith("error: replay over budget: camera-3: max abs")
    assert last.endswith("first divergent block onnxruntime: layers.1.blocks.0")
    report = json.loads((folder / "replay.json").read_text())
    assert report["first_divergent_blocks"] == {"onnxruntime": "layers.1.blocks.0"}
    assert report["parity"]["inputs"].startswith("shadow keep folder")
