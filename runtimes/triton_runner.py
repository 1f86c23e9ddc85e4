"""Triton client runner: the Detector's inference runs on an NVIDIA Triton Inference Server (any KServe v2 server)
through tritonclient, over gRPC or HTTP. Chosen by the source URL:

    Detector.load("grpc://host:8001/d0")          # or http://host:8000/d0, grpc://host:8001/d0/2 (version 2)

Pre- and post-processing stay on the client (letterbox to the artifact's uint8 NHWC input; the server's graph has
in-graph post-processing), so the client keeps the same Detections API. The manifest comes from the server: the
repository `edgedet export --format triton` writes carries it in config.pbtxt (parameter `edgedet_manifest`). For a
model served from elsewhere, give `manifest_path=` (the repository's model folder, its config.pbtxt or an artifact whose
manifest describes the served graph); its tensors are checked against the server's model metadata.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedet.errors import ArtifactError, InputError
from edgedet.manifest import TRITON_MANIFEST_PARAMETER as MANIFEST_PARAMETER
from edgedet.manifest import Manifest
from edgedet.options import Option

from .base import Runner

_URL = re.compile(r"^(?P<scheme>grpc|https?)://(?P<host>[^/]+)/(?P<model>[^/]+)(?:/(?P<version>\d+))?/?$")
# KServe v2 datatype names <-> numpy
V2_DTYPES = {"uint8": "UINT8", "float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32"}


def redact(url) -> str:
    """The URL with any user:password@ replaced by ***@, for messages."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", str(url))


def _check_port(host: str, url: str) -> None:
    """A port is 1..65535: gRPC would take 99999 modulo 65536 and connect to another port without a word."""
    port = host.rsplit(":", 1)[1] if ":" in host.lstrip("[").split("]")[-1] else None
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise InputError(f"'{redact(url)}': port {port!r:.20} is not a port number (1-65535)")


@dataclass(frozen=True)
class TritonURL:
    scheme: str
    host: str
    model: str
    version: str

    @classmethod
    def parse(cls, url: str) -> "TritonURL":
        m = _URL.match(str(url))
        if not m:
            raise InputError(
                f"'{redact(url)}' is not a Triton model URL: serve the repository with tritonserver "
                "--model-repository <repo>, then load grpc://host:port/model[/version] or "
                "http://host:port/model[/version]"
            )
        host = m["host"]
        if "@" in host:  # never echoed: the credentials are the part before the @
            raise InputError(
                f"'{redact(url)}': credentials in a Triton URL are not supported (tritonclient would not send them, "
                "and they would end up in logs and error messages); give host:port only"
            )
        _check_port(host, url)
        return cls(m["scheme"], host, m["model"], m["version"] or "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}/{self.model}" + (f"/{self.version}" if self.version else "")


@dataclass(frozen=True)
class _Scheme:
    """How one protocol's client is made and called (tritonclient's gRPC and HTTP clients differ in both)."""

    module: str
    shared: bool  # one client for all threads (gRPC); else one per thread (HTTP: gevent is per thread)
    client_kwargs: Callable[[TritonURL, float], dict]
    json_kwargs: dict  # how to get plain dicts back from metadata/config calls
    call_kwargs: Callable[[float], dict]  # a client-side deadline per call (infer included)
    config_key: str  # the config's key inside get_model_config's answer ("" = the answer itself)


_GRPC = _Scheme(
    "tritonclient.grpc", True, lambda url, t: {}, {"as_json": True}, lambda t: {"client_timeout": t}, "config"
)
_HTTP = _Scheme(
    "tritonclient.http",
    False,  # its deadline is the client's network_timeout
    lambda url, t: {"connection_timeout": t, "network_timeout": t, "ssl": url.scheme == "https"},
    {},
    lambda t: {},
    "",
)
SCHEMES = {"grpc": _GRPC, "http": _HTTP, "https": _HTTP}


class _Protocol:
    """The client of one server, by scheme (SCHEMES)."""

    def __init__(self, url: TritonURL, timeout: float):
        from edgedet.errors import BackendUnavailableError

        self.scheme = SCHEMES[url.scheme]
        try:
            import importlib

            self.lib = importlib.import_module(self.scheme.module)
        except (ImportError, RuntimeError) as e:
            raise BackendUnavailableError(f"triton ({url.scheme})", "triton", e) from e
        self.url, self.timeout = url, timeout
        self._kw = self.scheme.client_kwargs(url, timeout)
        self._local = threading.local()
        self._shared = self.lib.InferenceServerClient(url.host, **self._kw) if self.scheme.shared else None

    @property
    def client(self):
        """gRPC: one client shared by all threads (it is thread-safe). HTTP: one client per thread (its gevent
        connection pool cannot be touched from another thread, even under a lock); a thread's client goes
        with the thread."""
        if self._shared is not None:
            return self._shared
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.lib.InferenceServerClient(self.url.host, **self._kw)
        return client

    def call(self, method: str, *args, plain: bool = False):
        """A metadata/config/health call with the client-side deadline (and plain dicts where asked)."""
        kw = {**self.scheme.call_kwargs(self.timeout), **(self.scheme.json_kwargs if plain else {})}
        return getattr(self.client, method)(*args, **kw)

    def config(self, model: str, version: str) -> dict:
        answer = self.call("get_model_config", model, version, plain=True)
        return answer.get(self.scheme.config_key, {}) if self.scheme.config_key else answer

    def metadata(self, model: str, version: str) -> dict:
        return self.call("get_model_metadata", model, version, plain=True)

    def server_version(self) -> str:
        meta = self.call("get_server_metadata", plain=True)
        return f"{meta.get('name', 'server')} {meta.get('version', '')}".strip()

    def infer(self, model: str, version: str, inputs, outputs):
        return self.client.infer(
            model, inputs, model_version=version, outputs=outputs, **self.scheme.call_kwargs(self.timeout)
        )

    def close(self) -> None:
        client = self._shared or getattr(self._local, "client", None)
        if client is not None:
            client.close()


def manifest_from_config(config: dict, where: str) -> Manifest | None:
    """The manifest an edgedet repository put in config.pbtxt's parameters, or None if there is none."""
    param = (config.get("parameters") or {}).get(MANIFEST_PARAMETER)
    if not param:
        return None
    try:
        data = json.loads(param.get("string_value", "") if isinstance(param, dict) else param)
    except (ValueError, RecursionError) as e:
        raise ArtifactError(f"{where}: parameter {MANIFEST_PARAMETER} is not valid JSON: {e}") from None
    return Manifest.from_dict(data, where=f"{where} ({MANIFEST_PARAMETER})")


def manifest_from_path(path: str) -> Manifest:
    """A local manifest for a served model: a repository model folder, its config.pbtxt, or an artifact."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.pbtxt"
    return Manifest.read(p, verify=False)


class TritonRunner(Runner):
    """One Triton model on a server; several requests may be in flight (threads), each a blocking infer call."""

    name = "triton"
    OPTIONS = {
        "manifest_path": Option(
            str,
            help="local manifest (repository model folder, config.pbtxt or artifact) for a "
            "model whose server config does not carry one",
        ),
        "timeout": Option(float, 60.0, minimum=0.001, help="seconds per request"),
        "jobs": Option(int, 4, minimum=1, help="requests in flight when streaming"),
    }

    def __init__(self, path, manifest, device, manifest_path=None, timeout=60.0, jobs=4):
        self.url = TritonURL.parse(str(path))
        self.proto = _Protocol(self.url, timeout)
        try:
            self._connect(manifest, manifest_path, device)
        except BaseException:
            self.proto.close()
            raise
        self.stream_jobs = int(jobs)

    def _connect(self, manifest, manifest_path, device) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            self._connect_check()
            config = self.proto.config(self.url.model, self.url.version)
            manifest = (
                manifest_from_path(manifest_path)
                if manifest_path
                else manifest or manifest_from_config(config, str(self.url))
            )
            if manifest is None:
                raise ArtifactError(
                    f"{self.url}: the server's config carries no {MANIFEST_PARAMETER} parameter "
                    "(not a repository written by 'edgedet export --format triton'); give "
                    "manifest_path=<the repository's model folder or the artifact it serves>"
                )
            super().__init__(Path(self.url.model), manifest, device)
            self.meta = self.proto.metadata(self.url.model, self.url.version)
            self._check_tensors()
            self._server = self.proto.server_version()
        except (InferenceServerException, OSError) as e:
            raise ArtifactError(f"Triton at {self.url.host}: {str(e).splitlines()[0][:300]}") from None

    def _connect_check(self) -> None:
        from tritonclient.utils import InferenceServerException

        try:
            ready = self.proto.call("is_model_ready", self.url.model, self.url.version)
        except (InferenceServerException, OSError, ConnectionError) as e:
            raise ArtifactError(
                f"cannot reach Triton at {self.url.host} ({self.url.scheme}): {str(e).splitlines()[0][:200]}"
            ) from None
        if not ready:
            raise ArtifactError(f"model '{self.url.model}' is not ready on the Triton server at {self.url.host}")

    def _check_tensors(self) -> None:
        """The served model's input must be the manifest's tensor (name, dtype, per-image dims)."""
        inputs = {t["name"]: t for t in self.meta.get("inputs", [])}
        want = self.manifest.input
        got = inputs.get(want.name)
        if got is None:
            raise ArtifactError(
                f"{self.url}: the served model has inputs {sorted(inputs)}, the manifest says '{want.name}'"
            )
        dims = [int(d) for d in got.get("shape", [])]
        per_image = [int(d) for d in want.shape[1:]]
        if got.get("datatype") != V2_DTYPES.get(want.dtype) or dims[-len(per_image) :] != per_image:
            raise ArtifactError(
                f"{self.url}: served input {want.name} is {got.get('datatype')} {dims}, the "
                f"manifest says {V2_DTYPES.get(want.dtype)} {per_image}"
            )
        served = {t["name"] for t in self.meta.get("outputs", [])}
        missing = [o for o in self.output_names if o not in served]
        if missing:
            raise ArtifactError(f"{self.url}: the served model lacks outputs {missing} (it has {sorted(served)})")

    @property
    def device(self) -> str:
        return f"{self._server} at {self.url.host}"

    @property
    def execution_precision(self) -> str:
        return f"{self.manifest.precision} (server side)"

    @property
    def input_shape(self):
        return []

    def __call__(self, inputs):
        lib = self.proto.lib
        requests = []
        for name, value in inputs.items():
            value = np.ascontiguousarray(value)
            inp = lib.InferInput(name, list(value.shape), V2_DTYPES[str(value.dtype)])
            inp.set_data_from_numpy(value)
            requests.append(inp)
        outputs = [lib.InferRequestedOutput(n) for n in self.output_names]
        from tritonclient.utils import InferenceServerException

        try:
            result = self.proto.infer(self.url.model, self.url.version, requests, outputs)
        except (InferenceServerException, OSError) as e:
            raise ArtifactError(f"Triton request to {self.url} failed: {str(e).splitlines()[0][:300]}") from None
        return {n: result.as_numpy(n) for n in self.output_names}

    def versions(self):
        import importlib.metadata

        return {"tritonclient": importlib.metadata.version("tritonclient"), "server": self._server}

    def close(self) -> None:
        self.proto.close()
