"""The batcher on its own, with a stand-in for the model: coalescing rules and latency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import pytest

from serving.batching import Batcher
from serving.generation import Generation, GenParams

GREEDY = GenParams(max_new_tokens=4)


class Recorder:
    """Records each batch; answers every prompt with its upper-cased text.

    A batch holding "hold" blocks until `release` is set, so jobs submitted meanwhile
    queue up together.
    """

    def __init__(self, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, prompts: list[str], params: GenParams) -> list[Generation]:
        if "hold" in prompts:
            self.entered.set()
            self.release.wait(10)
        else:
            self.batches.append(list(prompts))
        if self.fail_on in prompts:
            raise RuntimeError("boom")
        return [Generation(p.upper(), params.max_new_tokens) for p in prompts]


@pytest.fixture
def make_batcher():
    batchers: list[Batcher] = []

    def make(run, max_batch_size=8, max_wait_s=0.05) -> Batcher:
        b = Batcher(run, max_batch_size, max_wait_s)
        b.start()
        batchers.append(b)
        return b

    yield make
    for b in batchers:
        b.stop()
        assert not b._thread.is_alive()


def results(futures, timeout=10):
    done, _ = wait(futures, timeout)
    assert len(done) == len(futures)
    return [[g.generated_text for g in f.result()] for f in futures]


def hold_worker(batcher: Batcher, run: Recorder) -> threading.Event:
    """Keep the worker busy on a first job; returns the event that lets it go on."""
    batcher.submit([(["hold"], GREEDY)])
    assert run.entered.wait(5)
    return run.release


def test_queued_requests_share_one_call_and_split_back(make_batcher):
    run = Recorder()
    b = make_batcher(run)
    release = hold_worker(b, run)
    futures = [b.submit([([f"r{i}a", f"r{i}b"], GREEDY)])[0] for i in range(3)]
    release.set()
    assert results(futures) == [[f"R{i}A", f"R{i}B"] for i in range(3)]
    assert run.batches == [["r0a", "r0b", "r1a", "r1b", "r2a", "r2b"]]
    stats = b.stats()
    assert stats["generate_calls"] == 2 and stats["batch_sizes"] == {"1": 1, "6": 1}


def test_batches_hold_at_most_max_batch_size_instances(make_batcher):
    run = Recorder()
    b = make_batcher(run, max_batch_size=4)
    release = hold_worker(b, run)
    futures = [b.submit([([f"p{i}"], GREEDY)])[0] for i in range(10)]
    release.set()
    results(futures)
    assert [len(batch) for batch in run.batches] == [4, 4, 2]


def test_a_request_larger_than_the_batch_is_not_split(make_batcher):
    run = Recorder()
    b = make_batcher(run, max_batch_size=2)
    [future] = b.submit([(["a", "b", "c"], GREEDY)])
    assert results([future]) == [["A", "B", "C"]]
    assert run.batches == [["a", "b", "c"]]


def test_incompatible_settings_and_seeded_samples_do_not_mix(make_batcher):
    run = Recorder()
    b = make_batcher(run)
    release = hold_worker(b, run)
    other = GenParams(max_new_tokens=9)
    seeded = GenParams(max_new_tokens=4, do_sample=True, seed=1)
    futures = [
        b.submit([(["g1"], GREEDY)])[0],
        b.submit([(["o1"], other)])[0],
        b.submit([(["s1"], seeded)])[0],
        b.submit([(["s2"], seeded)])[0],
        b.submit([(["g2"], GREEDY)])[0],
        b.submit([(["o2"], other)])[0],
    ]
    release.set()
    results(futures)
    assert run.batches == [["g1", "g2"], ["o1", "o2"], ["s1"], ["s2"]]


def test_batch_size_one_turns_batching_off(make_batcher):
    run = Recorder()
    b = make_batcher(run, max_batch_size=1)
    release = hold_worker(b, run)
    futures = [b.submit([([f"p{i}"], GREEDY)])[0] for i in range(3)]
    release.set()
    results(futures)
    assert run.batches == [["p0"], ["p1"], ["p2"]]


def test_a_lone_request_does_not_wait(make_batcher):
    run = Recorder()
    b = make_batcher(run, max_wait_s=1.0)  # a wait long enough to notice
    for _ in range(3):
        start = time.monotonic()
        results([b.submit([(["solo"], GREEDY)])[0]])
        assert time.monotonic() - start < 0.5


def test_an_announced_request_is_waited_for_but_never_past_the_wait(make_batcher):
    run = Recorder()
    b = make_batcher(run, max_wait_s=0.3)
    arrival = b.announce()  # a second request is being read
    start = time.monotonic()
    first = b.submit([(["first"], GREEDY)])[0]
    time.sleep(0.05)
    second = b.submit([(["second"], GREEDY)], arrival)[0]
    results([first, second])
    assert run.batches == [["first", "second"]]
    # And one that never comes costs at most the wait.
    stray = b.announce()
    start = time.monotonic()
    results([b.submit([(["alone"], GREEDY)])[0]])
    assert time.monotonic() - start < 0.3 + 0.2
    b.withdraw(stray)
    b.withdraw(stray)  # idempotent
    assert b._arriving == 0


def test_the_worker_survives_a_failing_batch(make_batcher):
    run = Recorder(fail_on="bad")
    b = make_batcher(run)
    [bad] = b.submit([(["bad"], GREEDY)])
    wait([bad], 10)
    with pytest.raises(RuntimeError, match="boom"):
        bad.result()
    assert results([b.submit([(["good"], GREEDY)])[0]]) == [["GOOD"]]
    assert b.stats()["generate_failures"] == 1


def test_cancelled_jobs_are_skipped(make_batcher):
    run = Recorder()
    b = make_batcher(run)
    release = hold_worker(b, run)
    gone = b.submit([(["gone"], GREEDY)])[0]
    kept = b.submit([(["kept"], GREEDY)])[0]
    assert gone.cancel()
    release.set()
    assert results([kept]) == [["KEPT"]]
    assert all("gone" not in batch for batch in run.batches)


def test_stop_fails_queued_jobs(make_batcher):
    run = Recorder()
    b = make_batcher(run)
    release = hold_worker(b, run)
    queued = b.submit([(["late"], GREEDY)])[0]
    stopper = threading.Thread(target=b.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    with pytest.raises(RuntimeError, match="shutting down"):
        queued.result(5)
    with pytest.raises(RuntimeError, match="shutting down"):
        b.submit([(["after"], GREEDY)])
