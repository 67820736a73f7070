"""Prometheus metrics, and the `/metrics` page that shows them.

The metric objects live at module level, as prometheus-client expects: it
picks between in-process values and files shared by several processes when
it is first imported, from PROMETHEUS_MULTIPROC_DIR. `ocr-backend` sets that
variable before this module is imported when WORKERS > 1 (commands/serve.py),
so each worker writes its own files and `/metrics`, whichever worker answers
it, sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# From a cached 5 ms answer to a 100-task batch on a CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OCR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)

REQUESTS = Counter(
    "ocr_backend_http_requests",
    "HTTP requests answered, by method, route and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "ocr_backend_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route and status",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
OCR_SECONDS = Histogram(
    "ocr_backend_ocr_seconds",
    "EasyOCR time per image (detection and recognition)",
    buckets=OCR_BUCKETS,
)
IMAGES_FETCHED = Counter(
    "ocr_backend_images_fetched", "Task images fetched and decoded, ready for OCR"
)
IMAGES_FAILED = Counter(
    "ocr_backend_images_failed",
    "Task images that could not be had, by reason",
    ["reason"],
)
QUEUE_IMAGES = Gauge(
    "ocr_backend_queue_images",
    "Images admitted to the engine's queue and not yet answered",
    multiprocess_mode="livesum",
)
QUEUE_REJECTED = Counter(
    "ocr_backend_queue_rejected_requests",
    "Predict requests answered 503 because the queue was full",
)
ENGINE_LOAD_SECONDS = Gauge(
    "ocr_backend_engine_load_seconds",
    "Time it took to load EasyOCR at start-up (one series per worker process)",
    multiprocess_mode="liveall",
)

# With RAY_ADDRESS only (ocr/cluster.py).
CLUSTER_ACTORS_UP = Gauge(
    "ocr_backend_cluster_actors_up",
    "Ray actors of the pool that answer and read",
    multiprocess_mode="livesum",
)
CLUSTER_REDISPATCHED = Counter(
    "ocr_backend_cluster_redispatched_images",
    "Images sent to another Ray actor because theirs was lost mid-read",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The text exposition of every metric, summed over all worker processes."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def forget_this_process() -> None:
    """A worker that stops takes its live gauges (queue, load time) with it."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())


# Bulk jobs (jobs/): counts come from the queue on disk, which every process sees alike.
JOB_TASKS = Gauge(
    "ocr_backend_job_tasks",
    "Tasks of each project's job, by state (queued, reading, done_waiting, answered, "
    "written, failed)",
    ["project", "state"],
    multiprocess_mode="livemax",
)
JOB_IMAGES_PER_SECOND = Gauge(
    "ocr_backend_job_images_per_second",
    "Images read per second for each project's job, over the last minute",
    ["project"],
    multiprocess_mode="livemax",
)
JOB_SECONDS_LEFT = Gauge(
    "ocr_backend_job_seconds_left",
    "Estimated seconds until each project's job has read every queued task (-1: unknown)",
    ["project"],
    multiprocess_mode="livemax",
)
JOB_READS = Counter(
    "ocr_backend_job_reads", "Queued tasks read in the background, by outcome", ["outcome"]
)
JOB_WRITES = Counter(
    "ocr_backend_job_writes",
    "Predictions written to Label Studio through its API (written), or not, by reason",
    ["outcome"],
)
JOB_ANSWER_ITEMS = Counter(
    "ocr_backend_predict_items",
    "Entries of /predict answers: answered (with a result), pending (not read by "
    "PREDICT_DEADLINE), failed, delivered (already delivered another way)",
    ["status"],
)


# Fine-tuning (training/): read from each project's progress file when /metrics or /jobs is asked.
TRAINING_DONE = Gauge(
    "ocr_backend_training_done",
    "Share (0-1) of each project's latest training that is done",
    ["project"],
    multiprocess_mode="livemax",
)
TRAINING_CER = Gauge(
    "ocr_backend_training_cer",
    "Held-out character error rate of each project's latest training, before and after",
    ["project", "model"],
    multiprocess_mode="livemax",
)
