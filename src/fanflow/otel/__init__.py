"""OpenTelemetry tracing and metrics for fanflow runs: off until `instrument()`.

    import fanflow.otel

    fanflow.otel.instrument()  # spans and metrics for every run in this process
    ...
    fanflow.otel.uninstrument()

Needs the ``otel`` extra (``pip install 'fanflow[otel]'``), which brings
the OpenTelemetry API only; an SDK (or any other implementation of the
API) decides where spans and metrics go. `prometheus_text` renders the
metrics in the Prometheus text format and needs the ``server`` extra.
``import fanflow`` never imports this module or OpenTelemetry.
"""

from __future__ import annotations

from typing import Any

OTEL_INSTALL = "pip install 'fanflow[otel]'"
PROMETHEUS_INSTALL = "pip install 'fanflow[server]'"

try:
    from opentelemetry import metrics as metrics_api
    from opentelemetry import trace as trace_api
except ImportError as missing:  # pragma: no cover - exercised without the extra
    raise ImportError(f"fanflow.otel needs OpenTelemetry: {OTEL_INSTALL}") from missing

from fanflow._runtime.hooks import Listener, add_listener, remove_listener  # noqa: E402 - after the check for the extra
from fanflow.otel._metrics import Metrics  # noqa: E402 - after the check for the extra
from fanflow.otel._tracing import TRACE_KEY, Tracing  # noqa: E402 - after the check for the extra

__all__ = ["SCOPE", "TRACE_KEY", "instrument", "is_instrumented", "prometheus_text", "uninstrument"]

SCOPE = "fanflow"  # instrumentation scope name of fanflow's tracer and meter

_listeners: list[Listener] = []
_prometheus: Any = None  # the registry prometheus_text() renders, once set up


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fanflow")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def instrument(
    *,
    tracer_provider: trace_api.TracerProvider | None = None,
    meter_provider: metrics_api.MeterProvider | None = None,
    spans: bool = True,
    metrics: bool = True,
    prometheus: bool = False,
) -> None:
    """Trace and count every run started from now on, in this process.

    `spans` and `metrics` turn either half off. Spans go to
    `tracer_provider` and metrics to `meter_provider` (default: the global
    providers OpenTelemetry was configured with). With
    ``prometheus=True`` and no `meter_provider`, metrics go to a meter
    provider of fanflow's own whose reader `prometheus_text` renders.
    Calling it again replaces the previous instrumentation.
    """
    global _prometheus
    uninstrument()
    version = _version()
    if prometheus and meter_provider is None:
        meter_provider, _prometheus = _prometheus_provider()
    if spans:
        tracer = trace_api.get_tracer(SCOPE, version, tracer_provider=tracer_provider)
        _listeners.append(Tracing(tracer))
    if metrics:
        meter = metrics_api.get_meter(SCOPE, version, meter_provider=meter_provider)
        _listeners.append(Metrics(meter))
    for listener in _listeners:
        add_listener(listener)


def uninstrument() -> None:
    """Stop tracing and counting runs started from now on (runs in progress finish traced)."""
    for listener in _listeners:
        remove_listener(listener)
    _listeners.clear()


def is_instrumented() -> bool:
    """Return whether `instrument` is in effect."""
    return bool(_listeners)


def prometheus_text() -> str:
    """Return fanflow's metrics in the Prometheus text exposition format (for ``/metrics``).

    Needs ``instrument(prometheus=True)`` first and the ``server`` extra
    (opentelemetry-exporter-prometheus and prometheus-client).
    """
    if _prometheus is None:
        raise RuntimeError(
            "fanflow metrics are not set up for Prometheus; call "
            "fanflow.otel.instrument(prometheus=True) first"
        )
    from prometheus_client import generate_latest

    text: bytes = generate_latest(_prometheus)
    return text.decode("utf-8")


def _prometheus_provider() -> tuple[metrics_api.MeterProvider, Any]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import CollectorRegistry
    except ImportError as missing:
        raise ImportError(
            f"fanflow.otel.instrument(prometheus=True) needs the Prometheus exporter: "
            f"{PROMETHEUS_INSTALL}"
        ) from missing
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    return MeterProvider(metric_readers=[reader]), registry
