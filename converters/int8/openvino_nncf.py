"""OpenVINO INT8 through NNCF: post-training quantization (PERFORMANCE or MIXED preset; NNCF keeps SE blocks and
other sensitive patterns in float by its own rules), and with a validation set its accuracy-aware form
(`quantize_with_accuracy_control`): NNCF ranks the quantized layers by their effect on the metric and reverts the
fewest to float that bring the drop within budget."""

from __future__ import annotations

import logging
import re

import numpy as np

from edgedet.errors import BackendUnavailableError, ConversionError


def _nncf():
    try:
        import nncf
    except ImportError as e:
        raise BackendUnavailableError("openvino (nncf)", "openvino", e) from e
    return nncf


def _common(nncf, preset: str, ignored, seven_bit_weights: bool) -> tuple[dict, object]:
    """Keyword arguments both NNCF entry points share, and their advanced quantization parameters (which each
    takes under its own keyword). 7-bit weights (NNCF's overflow fix on every layer) are for CPUs without VNNI,
    whose int8 dot products sum pairs of u8 x s8 products in 16 bits and can saturate; NNCF's default fixes the
    first layer only."""
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    fix = nncf.OverflowFix.ENABLE if seven_bit_weights else nncf.OverflowFix.FIRST_LAYER
    return (
        {
            "preset": presets[preset],
            "ignored_scope": nncf.IgnoredScope(names=list(ignored), validate=False) if ignored else None,
        },
        nncf.AdvancedQuantizationParameters(overflow_fix=fix),
    )


def quantize_nncf(
    ov_model,
    tensors: list[np.ndarray],
    preset: str = "performance",
    ignored: list[str] = (),
    fast_bias_correction: bool = True,
    seven_bit_weights: bool = False,
):
    nncf = _nncf()
    common, advanced = _common(nncf, preset, ignored, seven_bit_weights)
    try:
        return nncf.quantize(
            ov_model,
            nncf.Dataset(tensors),
            subset_size=len(tensors),
            fast_bias_correction=fast_bias_correction,
            advanced_parameters=advanced,
            **common,
        )
    except Exception as e:
        raise ConversionError(f"NNCF quantization failed: {e}") from e


class _RevertedLog(logging.Handler):
    """Collects the operations NNCF reports as reverted to float (its INFO log is the only place it says so)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.reverted: list[str] = []
        self.quantized: int | None = None

    def emit(self, record):
        msg = record.getMessage()
        m = re.match(r"(\d+) out of (\d+) were reverted back to the floating-point precision:\n?(.*)", msg, re.S)
        if m:
            self.quantized = int(m[2])
            self.reverted = [line.strip() for line in m[3].splitlines() if line.strip()]


def quantize_accuracy_control(
    ov_model,
    tensors: list,
    items: list,
    transform,
    metric,
    max_drop: float,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    ranking_subset: int = 100,
    ignored: list[str] = (),
    seven_bit_weights: bool = False,
):
    """NNCF accuracy-aware quantization with `metric(compiled_model, items) -> float` (higher is better) as the
    validation function; `ignored` ops start in float. Returns (quantized model, names of the operations NNCF
    reverted to float, how many operations it had quantized (None when NNCF reverted nothing), FakeQuantize
    nodes left in the model). When the first full quantization is within budget NNCF returns it at once."""
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    common, advanced = _common(nncf, preset, ignored, seven_bit_weights)
    failures: list[BaseException] = []

    def validate(compiled, data) -> float:
        try:
            return metric(compiled, data)
        except Exception as e:  # NNCF takes a failing metric as "no metric" and silently ranks by outputs
            failures.append(e)
            raise

    log = _RevertedLog()
    nncf_logger = logging.getLogger("nncf")
    nncf_logger.addHandler(log)
    try:
        q = nncf.quantize_with_accuracy_control(
            ov_model,
            nncf.Dataset(tensors),
            nncf.Dataset(items, transform),
            validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(tensors),
            fast_bias_correction=fast_bias_correction,
            advanced_quantization_parameters=advanced,
            **common,
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                ranking_subset_size=min(len(items), ranking_subset)
            ),
        )
    except Exception as e:
        raise ConversionError(f"NNCF accuracy-aware quantization failed: {e}") from e
    finally:
        nncf_logger.removeHandler(log)
    if failures:
        raise ConversionError(f"the validation metric failed inside NNCF: {failures[0]}") from failures[0]
    # NNCF names what it reverted only in its log, and only when it reverted something; the FakeQuantize nodes
    # left in the model are counted from the model itself
    fq = sum(op.get_type_name() == "FakeQuantize" for op in q.get_ordered_ops())
    return q, log.reverted, log.quantized, fq
