"""Dynamic batching: one queue per model, `instances` workers that form batches and run them off the event loop.

A worker takes the oldest queued request, waits at most `max_queue_delay` (measured from that request's arrival)
for more requests while the batch is not full, then concatenates the inputs, runs the backend in a thread pool and
hands every request its slice of the outputs. While a batch executes, new requests queue up and form the next
batch, so concurrency turns into larger batches. Requests larger than `max_batch_size` are split into several
queue entries and reassembled. Only requests whose per-sample shapes agree share a batch. A backend with a static
batch dimension gets its batches zero-padded to that size.

The queue is bounded (`max_queue_size` entries): a full queue answers 503 with Retry-After instead of letting
latency grow without limit. `stop()` refuses new requests and drains everything already queued.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vitrt.engines.base import InferenceBackend
from vitrt.serve.errors import InferenceFailedError, InvalidRequestError, ServiceUnavailableError

log = logging.getLogger("vitrt.serve.batching")


@dataclass(frozen=True)
class ExecutionRecord:
    """Timings of one backend execution, for statistics."""

    batch_size: int
    input_s: float  # gathering and padding the batch
    infer_s: float  # the backend call
    output_s: float  # splitting the outputs


@dataclass
class InferenceResult:
    """A request's outputs and where its time went (summed over its chunks when it was split)."""

    outputs: dict[str, np.ndarray]
    queue_s: float
    input_s: float
    infer_s: float
    output_s: float
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def compute_s(self) -> float:
        return self.input_s + self.infer_s + self.output_s


@dataclass(frozen=True)
class _Slice:
    outputs: dict[str, np.ndarray]
    queue_s: float
    record: ExecutionRecord


@dataclass(eq=False)
class _Work:
    feeds: dict[str, np.ndarray]
    size: int
    signature: tuple[tuple[int, ...], ...]
    outputs: tuple[str, ...]
    future: asyncio.Future[_Slice]
    enqueued: float
    deadline: float


class DynamicBatcher:
    def __init__(
        self,
        name: str,
        backend: InferenceBackend,
        *,
        max_batch_size: int,
        max_queue_delay_s: float,
        instances: int = 1,
        max_queue_size: int = 256,
        on_execution: Callable[[ExecutionRecord], None] | None = None,
    ) -> None:
        self.name = name
        self._backend = backend
        self._input_names = [spec.name for spec in backend.inputs]
        self._output_order = [spec.name for spec in backend.outputs]
        static = {spec.shape[0] for spec in backend.inputs if spec.shape and spec.shape[0] is not None}
        self.static_batch: int | None = min(static) if static else None
        limits = [max_batch_size]
        if backend.max_batch_size:
            limits.append(backend.max_batch_size)
        if self.static_batch:
            limits.append(self.static_batch)
        self.max_batch_size = max(1, min(limits))
        self.max_queue_delay_s = max_queue_delay_s
        self.instances = instances
        self.max_queue_size = max_queue_size
        self._on_execution = on_execution
        self._pending: deque[_Work] = deque()
        self._queued_samples = 0
        self._executing = 0
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False
        self._stopping = False

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._workers:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=self.instances, thread_name_prefix=f"vitrt-{self.name}")
        self._stopping = False
        self._accepting = True
        self._workers = [
            asyncio.create_task(self._worker(), name=f"vitrt-batcher-{self.name}-{i}") for i in range(self.instances)
        ]

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests, finish the queued ones (up to `timeout_s`), then release the threads."""
        self._accepting = False
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._workers:
            done, still_running = await asyncio.wait(self._workers, timeout=timeout_s)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running)
                log.warning("model %s: drain timed out after %.1f s", self.name, timeout_s)
        while self._pending:
            work = self._pending.popleft()
            if not work.future.done():
                work.future.set_exception(ServiceUnavailableError(f"model {self.name!r} is shutting down"))
        self._queued_samples = 0
        self._workers = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._accepting

    @property
    def queue_depth(self) -> int:
        """Requests (or request chunks) waiting for a batch."""
        return len(self._pending)

    @property
    def executing(self) -> int:
        return self._executing

    # ---- requests --------------------------------------------------------------------------------------------

    async def infer(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str], timeout_s: float
    ) -> InferenceResult:
        """Queue validated inputs (leading dimension = batch) and wait for the requested outputs."""
        if not self._accepting or self._wakeup is None:
            raise ServiceUnavailableError(f"model {self.name!r} is not accepting requests (shutting down)")
        total = int(next(iter(feeds.values())).shape[0])
        chunks = math.ceil(total / self.max_batch_size)
        if chunks > self.max_queue_size:
            raise InvalidRequestError(
                f"a batch of {total} needs {chunks} executions of at most {self.max_batch_size}, more than model "
                f"{self.name!r} queues ({self.max_queue_size}); send smaller requests"
            )
        if len(self._pending) + chunks > self.max_queue_size:
            raise ServiceUnavailableError(
                f"model {self.name!r} queue is full ({self.max_queue_size} requests waiting); retry later"
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        requested = set(output_names)
        wanted = tuple(name for name in self._output_order if name in requested)
        works = []
        for start in range(0, total, self.max_batch_size):
            part = {name: array[start : start + self.max_batch_size] for name, array in feeds.items()}
            size = int(next(iter(part.values())).shape[0])
            signature = tuple(part[name].shape[1:] for name in self._input_names)
            works.append(_Work(part, size, signature, wanted, loop.create_future(), now, now + timeout_s))
        for work in works:
            self._pending.append(work)
            self._queued_samples += work.size
        self._wakeup.set()
        try:
            slices = await asyncio.gather(*(work.future for work in works))
        except BaseException:
            for work in works:
                work.future.cancel()
            raise
        if len(slices) == 1:
            outputs = slices[0].outputs
        else:
            outputs = {name: np.concatenate([s.outputs[name] for s in slices]) for name in wanted}
        return InferenceResult(
            outputs=outputs,
            queue_s=max(s.queue_s for s in slices),
            input_s=sum(s.record.input_s for s in slices),
            infer_s=sum(s.record.infer_s for s in slices),
            output_s=sum(s.record.output_s for s in slices),
            batch_sizes=[s.record.batch_size for s in slices],
        )

    # ---- workers ---------------------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            if batch:
                await self._execute(batch)

    async def _next_batch(self) -> list[_Work] | None:
        assert self._wakeup is not None
        while not self._pending:
            if self._stopping:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        first = self._pending[0]
        if self.max_batch_size > 1 and self.max_queue_delay_s > 0:
            wait_until = first.enqueued + self.max_queue_delay_s
            while (
                not self._stopping
                and self._pending
                and self._pending[0] is first
                and self._queued_samples < self.max_batch_size
            ):
                remaining = wait_until - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
        return self._take()

    def _take(self) -> list[_Work]:
        now = time.perf_counter()
        batch: list[_Work] = []
        size = 0
        signature = None
        while self._pending:
            work = self._pending[0]
            if work.future.done():  # the client went away
                self._pop()
                continue
            if work.deadline < now:
                self._pop()
                waited = now - work.enqueued
                work.future.set_exception(
                    ServiceUnavailableError(f"request timed out after {waited:.1f} s in model {self.name!r} queue")
                )
                continue
            if signature is None:
                signature = work.signature
            elif work.signature != signature or size + work.size > self.max_batch_size:
                break
            self._pop()
            batch.append(work)
            size += work.size
        return batch

    def _pop(self) -> None:
        work = self._pending.popleft()
        self._queued_samples -= work.size

    async def _execute(self, batch: list[_Work]) -> None:
        loop = asyncio.get_running_loop()
        self._executing += 1
        try:
            dispatched = time.perf_counter()
            size = sum(work.size for work in batch)
            wanted = set().union(*(work.outputs for work in batch))
            names = [name for name in self._output_order if name in wanted]
            feeds = self._gather(batch, size)
            gathered = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._backend.run, feeds, names)
                self._check(results, names, size)
            except Exception:
                log.exception("model %s: batch of %d failed", self.name, size)
                for work in batch:
                    if not work.future.done():
                        work.future.set_exception(
                            InferenceFailedError(f"model {self.name!r} failed to run a batch of {size}")
                        )
                return
            finished = time.perf_counter()
            parts = []
            offset = 0
            for work in batch:
                parts.append({name: results[name][offset : offset + work.size] for name in work.outputs})
                offset += work.size
            record = ExecutionRecord(size, gathered - dispatched, finished - gathered, time.perf_counter() - finished)
            for work, part in zip(batch, parts, strict=True):
                if not work.future.done():
                    work.future.set_result(_Slice(part, dispatched - work.enqueued, record))
            if self._on_execution is not None:
                self._on_execution(record)
        finally:
            self._executing -= 1

    def _gather(self, batch: list[_Work], size: int) -> dict[str, np.ndarray]:
        pad = (self.static_batch - size) if self.static_batch else 0
        feeds = {}
        for name in self._input_names:
            parts = [work.feeds[name] for work in batch]
            if pad:
                parts.append(np.zeros((pad, *parts[0].shape[1:]), dtype=parts[0].dtype))
            feeds[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return feeds

    @staticmethod
    def _check(results: Mapping[str, np.ndarray], names: list[str], size: int) -> None:
        for name in names:
            array = results.get(name)
            if array is None or array.ndim == 0 or array.shape[0] < size:
                shape = None if array is None else list(array.shape)
                raise RuntimeError(f"output {name!r} has shape {shape}, expected a leading batch of {size}")
