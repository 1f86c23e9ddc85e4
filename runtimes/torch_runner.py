"""PyTorch runner: the reference path, and the verified GPU path where TensorRT is absent.

Options: half (fp16 on CUDA), channels_last, compile (torch.compile), cuda_graph (fixed-shape replay).
"""

from __future__ import annotations

import numpy as np
import torch

from edgedet.configs import ModelConfig
from edgedet.errors import ArtifactError, InputError
from edgedet.options import Option

from .base import Runner


class TorchRunner(Runner):
    name = "torch"
    OPTIONS = {
        "half": Option(bool, help="fp16 (CUDA only; default: on for CUDA)"),
        "channels_last": Option(bool, help="default: on for CUDA"),
        "compile": Option(bool, False, help="torch.compile"),
        "threads": Option(int, minimum=1, help="torch intra-op threads"),
        "cuda_graph": Option(bool, False, help="replay a CUDA graph for a fixed input shape"),
    }

    def __init__(
        self, path, manifest, device, half=None, channels_last=None, compile=False, threads=None, cuda_graph=False
    ):
        super().__init__(path, manifest, device)
        from edgedet.model import EfficientDet, load_weights
        from edgedet.model.export import FlatHeads
        from edgedet.model.factory import read_state_dict

        if device.kind == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if device.ordinal >= count:
                raise InputError(f"device {device} requested but torch sees {count} CUDA GPU(s)")
            dev = torch.device("cuda", device.ordinal)
        else:
            dev = torch.device("cpu")
        if threads:
            torch.set_num_threads(int(threads))
        cfg = ModelConfig.from_dict(manifest.model)
        model = EfficientDet(cfg)
        load_weights(model, read_state_dict(self.path), source=self.path.name)
        half = (manifest.precision == "fp16" or dev.type == "cuda") if half is None else half
        if half and dev.type != "cuda":
            raise InputError("fp16 torch inference is only supported on CUDA here; use fp32 on CPU")
        self.dtype = torch.float16 if half else torch.float32
        self.channels_last = dev.type == "cuda" if channels_last is None else channels_last
        model = model.to(dev, self.dtype).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.module = FlatHeads(model, self.dtype).eval()
        if compile:
            self.module = torch.compile(self.module, mode="max-autotune-no-cudagraphs")
        self.torch_device = dev
        if cuda_graph and dev.type != "cuda":
            raise InputError("cuda_graph needs device cuda")
        self.cuda_graph = cuda_graph
        self.thread_safe = not cuda_graph  # one captured graph and its static buffers
        self._graph = None  # (input shape, static input, CUDAGraph, static outputs)
        if manifest.postprocess.in_graph:
            raise ArtifactError("torch artifacts carry raw heads (logits, deltas); in-graph NMS is ONNX-only")

    @property
    def device(self) -> str:
        if self.torch_device.type == "cuda":
            return f"{self.torch_device} ({torch.cuda.get_device_name(self.torch_device)})"
        return "CPU"

    @property
    def execution_precision(self) -> str:
        return {torch.float16: "fp16", torch.float32: "fp32"}[self.dtype]

    @torch.inference_mode()
    def run_tensor(self, x: torch.Tensor):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x)

    def __call__(self, inputs):
        x = torch.from_numpy(np.ascontiguousarray(inputs[self.input_name])).to(self.torch_device, non_blocking=True)
        outs = self._replay(x) if self.cuda_graph else self.run_tensor(x)
        return {name: t.float().cpu().numpy() for name, t in zip(self.output_names, outs)}

    @torch.inference_mode()
    def _replay(self, x: torch.Tensor):
        """CUDA graph for a fixed input shape: captured on first use (after warm-up on a side stream, as
        torch.cuda.graphs requires), re-captured when the shape changes; the input is copied in, then replayed."""
        if self._graph is None or self._graph[0] != tuple(x.shape):
            static_in = torch.empty_like(x)
            static_in.copy_(x)
            side = torch.cuda.Stream(self.torch_device)
            side.wait_stream(torch.cuda.current_stream(self.torch_device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.run_tensor(static_in)
            torch.cuda.current_stream(self.torch_device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.run_tensor(static_in)
            self._graph = (tuple(x.shape), static_in, graph, static_out)
        _, static_in, graph, static_out = self._graph
        static_in.copy_(x)
        graph.replay()
        return static_out

    @torch.inference_mode()
    def device_time_ms(self, inputs, iters: int, warmup: int):
        if self.torch_device.type != "cuda":
            return None
        x = torch.from_numpy(np.ascontiguousarray(inputs[self.input_name])).to(self.torch_device)
        run = self._replay if self.cuda_graph else self.run_tensor
        times = []
        for i in range(warmup + iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(x)
            end.record()
            end.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(end))
        return times

    def versions(self):
        v = {"torch": torch.__version__}
        if self.torch_device.type == "cuda":
            v["cuda"] = torch.version.cuda
        return v
