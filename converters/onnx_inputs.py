"""Input forms of an exported ONNX graph: what tensor the artifact takes, and the nodes that turn it into the
normalised float NCHW RGB tensor the network was traced with. One row per form, chosen by an export option.

    normalized  float32 NCHW RGB, (x/255 - mean)/std done on the host (edgedet's default)
    pixels      float32 NCHW RGB in 0..255, normalisation in the graph: what DeepStream's nvinfer hands an engine with
                net-scale-factor=1 (its one scale is a scalar; ImageNet's std is per channel) and what OpenVINO
                model_api feeds when its model_info carries no mean/scale
    u8_bgr      uint8 NHWC BGR (OpenCV frames), cast, transposed, channel-flipped and normalised in the graph: what
                Frigate feeds with input_tensor nhwc, input_pixel_format bgr, input_dtype int
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InputForm:
    name: str
    dtype: str  # the manifest's input.dtype
    layout: str  # NCHW | NHWC
    color: str  # RGB | BGR
    normalize: str  # host | in_graph
    description: str


INPUT_FORMS = {
    f.name: f
    for f in (
        InputForm("normalized", "float32", "NCHW", "RGB", "host", "float32 NCHW RGB, normalised on the host"),
        InputForm("pixels", "float32", "NCHW", "RGB", "in_graph", "float32 NCHW RGB pixels 0..255"),
        InputForm("u8_bgr", "uint8", "NHWC", "BGR", "in_graph", "uint8 NHWC BGR frames"),
    )
}

_ONNX_TYPES = {"float32": "FLOAT", "uint8": "UINT8"}  # onnx.TensorProto names: the table imports without onnx


def shape_of(form: InputForm, batch, image_hw) -> list:
    h, w = image_hw
    return [batch, 3, h, w] if form.layout == "NCHW" else [batch, h, w, 3]


def prepend_input(model, form_name: str, input_name: str, mean, std):
    """Make the graph take `form_name`'s tensor under `input_name`; the nodes added before the network produce the
    normalised tensor it was traced with (no nodes for 'normalized')."""
    from onnx import TensorProto, helper, numpy_helper  # the export extra; the CLI reads INPUT_FORMS without it

    form = INPUT_FORMS[form_name]
    if form.normalize == "host":
        return model
    g = model.graph
    old = next(i for i in g.input if i.name == input_name)
    dims = [d.dim_param or d.dim_value for d in old.type.tensor_type.shape.dim]
    inner = f"{input_name}_normalized"
    for node in g.node:
        node.input[:] = [inner if n == input_name else n for n in node.input]
    consts = {
        "pre_mean": (np.asarray(mean, np.float32) * 255).reshape(1, 3, 1, 1),
        "pre_std": (np.asarray(std, np.float32) * 255).reshape(1, 3, 1, 1),
        "pre_bgr_to_rgb": np.array([2, 1, 0], np.int64),
    }
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes, x = [], input_name
    if form.dtype != "float32":
        nodes.append(helper.make_node("Cast", [x], ["pre_float"], to=TensorProto.FLOAT))
        x = "pre_float"
    if form.layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["pre_nchw"], perm=[0, 3, 1, 2]))
        x = "pre_nchw"
    if form.color == "BGR":
        nodes.append(helper.make_node("Gather", [x, "pre_bgr_to_rgb"], ["pre_rgb"], axis=1))
        x = "pre_rgb"
    nodes.append(helper.make_node("Sub", [x, "pre_mean"], ["pre_centred"]))
    nodes.append(helper.make_node("Div", ["pre_centred", "pre_std"], [inner]))
    for i, n in enumerate(nodes):
        n.name = f"pre_node_{i}"
    new_nodes = nodes + list(g.node)
    del g.node[:]
    g.node.extend(new_nodes)
    new_input = helper.make_tensor_value_info(
        input_name, getattr(TensorProto, _ONNX_TYPES[form.dtype]), shape_of(form, dims[0], dims[2:])
    )
    idx = list(g.input).index(old)
    g.input.remove(old)
    g.input.insert(idx, new_input)
    return model
