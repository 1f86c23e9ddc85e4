"""OpenVINO INT8 through NNCF post-training quantization (PERFORMANCE or MIXED preset; NNCF keeps SE blocks and
other sensitive patterns in float by its own rules; ignored_scope keeps what the accuracy gate excludes)."""
from __future__ import annotations

import numpy as np

from edgedet.errors import BackendUnavailableError, ConversionError


def quantize_nncf(ov_model, tensors: list[np.ndarray], preset: str = "performance", ignored: list[str] = (),
                  fast_bias_correction: bool = True):
    try:
        import nncf
    except ImportError as e:
        raise BackendUnavailableError("openvino (nncf)", "openvino", e) from e
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    scope = nncf.IgnoredScope(names=list(ignored), validate=False) if ignored else None
    try:
        return nncf.quantize(ov_model, nncf.Dataset(tensors), preset=presets[preset], subset_size=len(tensors),
                             fast_bias_correction=fast_bias_correction, ignored_scope=scope)
    except Exception as e:
        raise ConversionError(f"NNCF quantization failed: {e}") from e
