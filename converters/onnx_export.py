"""torch -> ONNX: opset 17, static or dynamic batch, host or in-graph post-processing, FP32 or FP16.

The TorchScript exporter is the default: it emits opset 17 (the newest TensorRT 8.6 / JetPack 5
parses) and is ~5x faster than the dynamo exporter, which cannot go below opset 18 here. SiLU
leaves the exporter as Sigmoid * Mul at these opsets. Output is simplified with onnxsim and
passes onnx.checker's full check before it is written (atomically, with its manifest).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from edgedet.anchors import anchors_for
from edgedet.classes import fit_class_names
from edgedet.errors import BackendUnavailableError, ConversionError, InputError
from edgedet.fileio import publish
from edgedet.manifest import (
    HOST_OUTPUTS,
    INPUT_NAME,
    BatchSection,
    CostSection,
    InputSection,
    Manifest,
    PostprocessSection,
    tool_versions,
)
from edgedet.postprocess import OUTPUT_FORMS
from edgedet.weights import file_sha256

from .onnx_inputs import INPUT_FORMS, prepend_input, shape_of
from .onnx_postprocess import append_postprocess, runtime_inputs

DEFAULT_SCORE_THRESHOLD = 0.001  # in-graph NMS floor; the deploy threshold is applied on the host


@dataclass
class ExportOptions:
    batch: int | str = 1  # an int for a static batch, or "dynamic"
    max_batch: int = 32  # recorded for dynamic batch (TensorRT profiles use it)
    postprocess: str = "host"  # host | graph
    precision: str = "fp32"  # fp32 | fp16
    opset: int = 17
    simplify: bool = True
    exporter: str = "torchscript"  # torchscript | dynamo
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    iou_threshold: float = 0.5
    max_candidates: int = 1000
    max_det: int = 100
    output_form: str = "edgedet"  # in-graph output layout: edgedet.postprocess.OUTPUT_FORMS
    input_form: str = "normalized"  # converters/onnx_inputs.py INPUT_FORMS

    def validate(self) -> None:
        if self.postprocess not in ("host", "graph"):
            raise InputError(f"--postprocess must be host or graph, got {self.postprocess!r}")
        if self.output_form not in OUTPUT_FORMS:
            raise InputError(f"unknown output form {self.output_form!r}; choose one of {', '.join(OUTPUT_FORMS)}")
        if self.output_form != "edgedet" and self.postprocess != "graph":
            raise InputError(
                f"output form {self.output_form} is a layout of in-graph post-processing: export with "
                "--postprocess graph"
            )
        if self.input_form not in INPUT_FORMS:
            raise InputError(f"unknown input form {self.input_form!r}; choose one of {', '.join(INPUT_FORMS)}")
        if self.precision not in ("fp32", "fp16"):
            raise InputError(
                f"ONNX export precision must be fp32 or fp16 (INT8 comes from 'edgedet calibrate'), "
                f"got {self.precision!r}"
            )
        if self.batch != "dynamic" and (not isinstance(self.batch, int) or self.batch < 1):
            raise InputError(f"--batch must be a positive integer or 'dynamic', got {self.batch!r}")
        if self.exporter not in ("torchscript", "dynamo"):
            raise InputError(f"unknown exporter {self.exporter!r}")
        if self.opset < 17:
            raise InputError("opset must be >= 17")


def _require(name: str):
    try:
        return __import__(name)
    except ImportError as e:
        raise BackendUnavailableError(name, "export", e) from e


def export_onnx(
    model,
    out_path: str | Path,
    options: ExportOptions | None = None,
    class_names=None,
    weights_info: dict | None = None,
) -> Path:
    """Export an EfficientDet (edgedet.model) to ONNX at out_path and write its manifest beside it."""
    onnx = _require("onnx")
    opts = options or ExportOptions()
    opts.validate()
    cfg = model.config
    proto = _trace(model, opts)
    if opts.simplify:
        proto = _simplify(proto)
    if opts.postprocess == "graph":
        proto = append_postprocess(
            proto,
            anchors_for(cfg),
            cfg.image_size,
            cfg.num_classes,
            opts.score_threshold,
            opts.iou_threshold,
            opts.max_candidates,
            opts.max_det,
            opts.output_form,
        )
    proto = prepend_input(proto, opts.input_form, INPUT_NAME, cfg.mean, cfg.std)
    proto.producer_name = "edgedet"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ConversionError(f"exported ONNX fails onnx.checker: {e}") from e
    manifest = onnx_manifest(cfg, opts, class_names, weights_info, proto)
    write_onnx_artifact(proto, Path(out_path), manifest)
    return Path(out_path)


def _trace(model, opts: ExportOptions):
    """torch -> ONNX ModelProto (host outputs: raw heads)."""
    torch = _require("torch")
    onnx = _require("onnx")
    from edgedet.model.export import FlatHeads

    cfg = model.config
    dtype = torch.float16 if opts.precision == "fp16" else torch.float32
    model = model.to("cpu").eval()
    wrapper = FlatHeads(model.to(dtype), dtype).eval()
    batch = 1 if opts.batch == "dynamic" else int(opts.batch)
    example = torch.zeros(batch, 3, *cfg.image_size)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if opts.exporter == "dynamo":
                dyn = (
                    {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=max(2, opts.max_batch))}}
                    if opts.batch == "dynamic"
                    else None
                )
                prog = torch.onnx.export(
                    wrapper,
                    (example,),
                    input_names=[INPUT_NAME],
                    output_names=list(HOST_OUTPUTS),
                    opset_version=max(opts.opset, 18),
                    dynamo=True,
                    dynamic_shapes=dyn,
                )
                return prog.model_proto
            dyn = {n: {0: "batch"} for n in (INPUT_NAME, *HOST_OUTPUTS)} if opts.batch == "dynamic" else None
            torch.onnx.export(
                wrapper,
                (example,),
                buf,
                input_names=[INPUT_NAME],
                output_names=list(HOST_OUTPUTS),
                opset_version=opts.opset,
                dynamo=False,
                dynamic_axes=dyn,
                do_constant_folding=True,
            )
            return onnx.load_from_string(buf.getvalue())
    except Exception as e:
        raise ConversionError(f"ONNX export of {cfg.name} failed: {type(e).__name__}: {e}") from e
    finally:
        model.float()


def model_cost_section(cfg) -> CostSection:
    """Params and multiply-adds, counted once at export and recorded in the manifest (runtimes need no torch)."""
    from edgedet.model.cost import model_cost

    return model_cost(cfg)


def onnx_manifest(cfg, opts: ExportOptions, class_names, weights_info, proto) -> Manifest:
    dynamic = opts.batch == "dynamic"
    batch = 1 if dynamic else int(opts.batch)
    graph = opts.postprocess == "graph"
    form = INPUT_FORMS[opts.input_form]
    return Manifest(
        model=cfg.to_dict(),
        class_names=fit_class_names(class_names, cfg.num_classes),
        input=InputSection(
            name=INPUT_NAME,
            shape=shape_of(form, "batch" if dynamic else batch, cfg.image_size),
            layout=form.layout,
            dtype=form.dtype,
            color=form.color,
            mean=list(cfg.mean),
            std=list(cfg.std),
            normalize=form.normalize,
        ),
        outputs=list(OUTPUT_FORMS[opts.output_form].outputs if graph else HOST_OUTPUTS),
        postprocess=PostprocessSection(
            in_graph=graph,
            score_threshold=opts.score_threshold,
            iou_threshold=opts.iou_threshold,
            max_candidates=opts.max_candidates,
            max_det=_graph_max_det(cfg, opts) if graph else opts.max_det,
            output_form=opts.output_form,
            runtime_inputs=runtime_inputs(opts.output_form) if graph else {},
        ),
        batch=BatchSection(dynamic=dynamic, min=1 if dynamic else batch, max=opts.max_batch if dynamic else batch),
        cost=model_cost_section(cfg),
        precision=opts.precision,
        weights=weights_info,
        tools=tool_versions("torch", "timm", "onnx", "onnxsim"),
        extra={
            "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "exporter": opts.exporter,
        },
    )


def _graph_max_det(cfg, opts: ExportOptions) -> int:
    """The D the graph's outputs hold (append_postprocess caps max_det by the candidates)."""
    from .onnx_postprocess import TRT_TOPK_LIMIT

    anchors = len(anchors_for(cfg))
    return int(min(opts.max_det, opts.max_candidates, anchors * cfg.num_classes, TRT_TOPK_LIMIT))


def write_onnx_artifact(proto, out_path: Path, manifest: Manifest) -> None:
    """Write the model and its manifest; they replace an existing pair only once both are complete."""
    import onnx

    with publish(out_path) as tmp:
        onnx.save_model(proto, str(tmp))
        # the float model itself, before the embedded manifest (whose creation time differs per export) goes in:
        # every artifact derived from this one inherits it (derive merges extra), so a precision verdict on this
        # model follows it across formats (edgedet.precision.lineage)
        manifest.extra["float_graph_sha256"] = file_sha256(tmp)
        manifest.write(tmp)


def _simplify(proto):
    try:
        import onnxsim
    except ImportError:
        warnings.warn("onnxsim not installed: exporting without simplification", stacklevel=3)
        return proto
    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception as e:  # onnxsim failures must not lose a valid export
        warnings.warn(f"onnxsim failed ({e}); keeping the unsimplified graph", stacklevel=3)
        return proto
    return simplified if ok else proto


def weights_info(weights) -> dict | None:
    if weights is None:
        return {"source": "random-init", "sha256": None}
    p = Path(weights)
    return {"source": str(weights), "sha256": file_sha256(p) if p.is_file() else None}
