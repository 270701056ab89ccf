"""The dynamic batcher on real ONNX Runtime backends, in-process (no HTTP): batch formation, splitting, padding,
shape grouping, back-pressure, queue timeouts, backend failures and draining."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from serve_support import LOOKUP_TABLE, build_arith

from vitrt.engines import load
from vitrt.serve.batching import DynamicBatcher, ExecutionRecord
from vitrt.serve.errors import InferenceFailedError, InvalidRequestError, ServiceUnavailableError


def _arith_feeds(n: int, width: int = 16, start: float = 0.0):
    x = (np.arange(n * width, dtype=np.float32).reshape(n, width) + start) / 7.0
    y = np.full((n, width), 0.5, dtype=np.float16)
    return {"INPUT0": x, "INPUT1": y}


def _check_arith(feeds, outputs):
    np.testing.assert_allclose(outputs["OUTPUT0"], feeds["INPUT0"] + 0.5, rtol=1e-6)
    np.testing.assert_allclose(outputs["OUTPUT1"], (feeds["INPUT0"] - 0.5).astype(np.float16), rtol=1e-3)


def _batcher(backend, records, **kwargs):
    options = {"max_batch_size": 8, "max_queue_delay_s": 0.05, "instances": 1, "max_queue_size": 64}
    options.update(kwargs)
    return DynamicBatcher("test", backend, on_execution=records.append, **options)


@pytest.fixture(scope="module")
def arith_backend(arith_onnx):
    return load(arith_onnx)


def test_concurrent_requests_share_batches_and_get_their_own_rows(arith_backend):
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(arith_backend, records)
        await batcher.start()
        requests = [_arith_feeds(1, start=100.0 * i) for i in range(20)]
        results = await asyncio.gather(*(batcher.infer(f, ["OUTPUT0", "OUTPUT1"], 10.0) for f in requests))
        await batcher.stop()
        return requests, results

    requests, results = asyncio.run(scenario())
    for feeds, result in zip(requests, results, strict=True):
        _check_arith(feeds, result.outputs)
        assert result.outputs["OUTPUT0"].shape == (1, 16)
    sizes = [r.batch_size for r in records]
    assert sum(sizes) == 20
    assert max(sizes) == 8 and len(records) <= 4  # 20 requests in 8 + 8 + 4 (at most one extra partial batch)


def test_request_larger_than_max_batch_is_split_and_reassembled(arith_backend):
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(arith_backend, records, max_batch_size=4, max_queue_delay_s=0.0)
        await batcher.start()
        feeds = _arith_feeds(10)
        result = await batcher.infer(feeds, ["OUTPUT0"], 10.0)
        await batcher.stop()
        return feeds, result

    feeds, result = asyncio.run(scenario())
    assert sorted(r.batch_size for r in records) == [2, 4, 4]
    assert result.batch_sizes == [4, 4, 2]
    assert set(result.outputs) == {"OUTPUT0"}
    np.testing.assert_allclose(result.outputs["OUTPUT0"], feeds["INPUT0"] + 0.5, rtol=1e-6)


def test_static_batch_backend_gets_zero_padded_batches(tmp_path):
    backend = load(build_arith(tmp_path / "static.onnx", batch=4))
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(backend, records, max_batch_size=16, max_queue_delay_s=0.0)
        await batcher.start()
        assert batcher.max_batch_size == 4 and batcher.static_batch == 4
        feeds = _arith_feeds(3)
        result = await batcher.infer(feeds, ["OUTPUT0", "OUTPUT1"], 10.0)
        await batcher.stop()
        return feeds, result

    feeds, result = asyncio.run(scenario())
    _check_arith(feeds, result.outputs)
    assert result.outputs["OUTPUT0"].shape == (3, 16)


def test_requests_with_different_sample_shapes_never_share_a_batch(tmp_path):
    backend = load(build_arith(tmp_path / "dynamic.onnx", width="width"))
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(backend, records, max_queue_delay_s=0.05)
        await batcher.start()
        requests = [_arith_feeds(1, width=16 if i % 2 else 8, start=i) for i in range(8)]
        results = await asyncio.gather(*(batcher.infer(f, ["OUTPUT0", "OUTPUT1"], 10.0) for f in requests))
        await batcher.stop()
        return requests, results

    requests, results = asyncio.run(scenario())
    for feeds, result in zip(requests, results, strict=True):
        _check_arith(feeds, result.outputs)
    assert sum(r.batch_size for r in records) == 8 and len(records) >= 2


def test_full_queue_refuses_with_503_and_stop_drains_what_was_queued(arith_backend):
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(arith_backend, records, max_queue_delay_s=30.0, max_queue_size=2)
        await batcher.start()
        queued = [asyncio.ensure_future(batcher.infer(_arith_feeds(1, start=i), ["OUTPUT0"], 60.0)) for i in range(2)]
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == 2
        with pytest.raises(ServiceUnavailableError, match="queue is full"):
            await batcher.infer(_arith_feeds(1), ["OUTPUT0"], 60.0)
        with pytest.raises(InvalidRequestError, match="a batch of 24 needs 3 executions"):
            await batcher.infer(_arith_feeds(24), ["OUTPUT0"], 60.0)
        started = time.perf_counter()
        await batcher.stop(timeout_s=10.0)  # must not wait for the 30 s queue delay
        drained_in = time.perf_counter() - started
        results = await asyncio.gather(*queued)
        with pytest.raises(ServiceUnavailableError, match="not accepting"):
            await batcher.infer(_arith_feeds(1), ["OUTPUT0"], 60.0)
        return results, drained_in

    results, drained_in = asyncio.run(scenario())
    assert drained_in < 5.0
    assert [r.outputs["OUTPUT0"].shape for r in results] == [(1, 16), (1, 16)]
    assert sum(r.batch_size for r in records) == 2


def test_request_that_waits_past_its_timeout_is_rejected(arith_backend):
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(arith_backend, records, max_queue_delay_s=0.3)
        await batcher.start()
        late = batcher.infer(_arith_feeds(1), ["OUTPUT0"], 0.01)
        with pytest.raises(ServiceUnavailableError, match="timed out"):
            await late
        ok = await batcher.infer(_arith_feeds(1), ["OUTPUT0"], 10.0)
        await batcher.stop()
        return ok

    assert asyncio.run(scenario()).outputs["OUTPUT0"].shape == (1, 16)


def test_backend_failure_fails_its_batch_only(lookup_onnx):
    backend = load(lookup_onnx)
    records: list[ExecutionRecord] = []

    async def scenario():
        batcher = _batcher(backend, records, max_queue_delay_s=0.0)
        await batcher.start()
        with pytest.raises(InferenceFailedError, match="failed to run a batch"):
            await batcher.infer({"INDICES": np.array([[0, 99]], dtype=np.int64)}, ["VALUES"], 10.0)
        good = await batcher.infer({"INDICES": np.array([[2, 3]], dtype=np.int64)}, ["VALUES"], 10.0)
        await batcher.stop()
        return good

    np.testing.assert_array_equal(asyncio.run(scenario()).outputs["VALUES"], [LOOKUP_TABLE[[2, 3]]])
