"""OpenTelemetry tracing, off by default (`IMAGEBUILDER_TRACING=true` turns it on).

One trace follows a build from the upload through the Celery message to each pipeline phase:
the API's `builds.submit` span, a PRODUCER span for the message whose context travels in the
message headers (W3C `traceparent`), then in the worker a CONSUMER span and one span per phase.

Code here only uses the OpenTelemetry API, whose tracer does nothing until a provider is
installed; `configure()` installs the SDK's provider with an OTLP exporter (the
`opentelemetry-exporter-otlp-proto-http` package, configured by the standard OTEL_EXPORTER_OTLP_*
variables) when tracing is on. Tests install their own provider and exporter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from core.settings import Settings

log = logging.getLogger(__name__)
INSTRUMENTATION = "imagebuilder"
_configured = False


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION)


def configure(settings: Settings) -> bool:
    """Install the tracer provider when tracing is on; True if spans are now exported."""
    global _configured
    if not settings.tracing_enabled or _configured:
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning(
            "tracing is on but no exporter is installed: pip install "
            "opentelemetry-exporter-otlp-proto-http; no spans are sent"
        )
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": settings.tracing_service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def carrier() -> dict[str, str]:
    """The current trace context as message headers."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def context_from(headers: Mapping[str, object]) -> Context:
    """The trace context a message carried (an empty one when it carried none)."""
    return propagate.extract({k: str(v) for k, v in headers.items() if isinstance(v, str)})
