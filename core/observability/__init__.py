"""What operators see: JSON logs, OpenTelemetry traces and the figures /metrics reports."""
