"""t2vrt: deploy diffusers text-to-video models (ModelScope / Zeroscope UNet3D family) to ONNX and TensorRT."""

from t2vrt.engines.backends import LoadOptions
from t2vrt.errors import EngineError, ExportError, InputError, ManifestError, SchedulerError, T2VError
from t2vrt.runtime.output import Video
from t2vrt.runtime.pipeline import Pipeline

__version__ = "0.1.0"
__all__ = ["Pipeline", "LoadOptions", "Video", "T2VError", "InputError", "ManifestError", "ExportError", "EngineError",
           "SchedulerError"]

from t2vrt.runtime.video2video import VideoToVideoPipeline  # noqa: E402

__all__ += ["VideoToVideoPipeline"]
