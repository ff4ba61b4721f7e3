"""The service's Prometheus metrics, on a registry of its own (``GET /metrics``).

Why a registry per app rather than prometheus_client's global one: a test or
a benchmark that builds several apps in one process would otherwise register
the same names twice. Labels are bounded: the route template (not the raw
path), the status code and the model name.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)


class ServiceMetrics:
    """Request counts and latencies by endpoint and status, rows per request, model versions and reloads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mlbatch_serve_requests", "Requests answered, by endpoint and status.", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "mlbatch_serve_request_seconds",
            "Time from the request's arrival at the app to its answer, by endpoint and status.",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Histogram(
            "mlbatch_serve_rows_per_request", "Rows scored per request.", ["endpoint"], buckets=ROW_BUCKETS, registry=r
        )
        self.version = Gauge("mlbatch_serve_model_version", "Model version being served.", ["model"], registry=r)
        self.ready = Gauge("mlbatch_serve_model_ready", "1 once a verified model is loaded.", ["model"], registry=r)
        self.reloads = Counter(
            "mlbatch_serve_reloads", "Champion changes loaded and swapped in.", ["model"], registry=r
        )
        self.reload_failures = Counter(
            "mlbatch_serve_reload_failures",
            "Champion versions refused (verification failed); the previous version kept serving.",
            ["model"],
            registry=r,
        )
        self.poll_errors = Counter(
            "mlbatch_serve_poll_errors", "Alias checks that failed to reach storage (retried).", ["model"], registry=r
        )
        self.captured_rows = Counter("mlbatch_serve_captured_rows", "Rows written to captures.", ["model"], registry=r)
        self.capture_failures = Counter(
            "mlbatch_serve_capture_failures", "Capture files that could not be written.", ["model"], registry=r
        )

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(endpoint, code).inc()
        self.latency.labels(endpoint, code).observe(seconds)
