"""tencent-live-exporter: Prometheus exporter for Tencent Cloud Live master/backup push streams."""

__version__ = "0.1.0"

__all__ = ["__version__"]
