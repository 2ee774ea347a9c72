"""Export a diffusers text-to-video model to a self-contained engine directory (needs the `export` extra)."""

from t2vrt.export.exporter import ExportOptions, export_model

__all__ = ["ExportOptions", "export_model"]
