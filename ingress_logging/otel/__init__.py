"""OpenTelemetry exporters (placeholder while being built)."""
