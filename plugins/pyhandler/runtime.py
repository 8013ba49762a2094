"""smhost pyhandler runtime: the SageMaker inference handler contract (model_fn, input_fn, predict_fn,
output_fn or transform_fn, each with an optional context argument) and the built-in JSON, CSV and NPY codecs.

Loaded into the embedded interpreter by pyhandler.so; the C side calls load_model() and invoke() only.
Request bodies are never unpickled (np.load(..., allow_pickle=False)).
"""
import importlib.util
import inspect
import io
import json
import os
import sys
import traceback

JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"


class HandlerError(Exception):
    """An error with an HTTP status (sagemaker_inference's GenericInferenceToolkitError has the same shape)."""

    def __init__(self, status_code, message):
        super().__init__(message)
        self.status_code = status_code


class Context:
    """The optional `context` argument: what the model server knows about the model and the request."""

    def __init__(self, model_name, model_dir):
        self.model_name = model_name
        self.model_dir = model_dir
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "server_name": "smhost"}
        self.content_type = ""
        self.accept = ""
        self.custom_attributes = ""
        self.response_custom_attributes = None  # set it to send X-Amzn-SageMaker-Custom-Attributes back
        self.response_content_type = None

    def get_request_header(self, idx, key):
        key = key.lower()
        return {"content-type": self.content_type, "accept": self.accept,
                "x-amzn-sagemaker-custom-attributes": self.custom_attributes}.get(key)


def _np():
    import numpy
    return numpy


def _media(t):
    return t.split(";", 1)[0].strip().lower()


def _text(data):
    return data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data


def default_input_fn(data, content_type):
    ct = _media(content_type)
    if ct not in (JSON, CSV, NPY):
        raise HandlerError(415, f"content type {content_type!r} is not supported: send {JSON}, {CSV} or {NPY}, "
                                "or write an input_fn")
    try:
        return _decode(data, ct)
    except (ValueError, EOFError, OSError) as e:  # the client's mistake: 400, not a server error
        raise HandlerError(400, f"the body is not valid {ct}: {type(e).__name__}: {e}") from None


def _decode(data, ct):
    np = _np()
    if ct == JSON:
        arr = np.array(json.loads(_text(data)))
    elif ct == CSV:
        text = _text(data)
        try:  # plain numeric CSV, fast; anything else (missing values, text) the way the toolkit reads it
            arr = np.array([row.split(",") for row in text.splitlines() if row.strip()], dtype=float)
        except ValueError:
            arr = np.genfromtxt(io.StringIO(text), delimiter=",")
    else:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr


def default_predict_fn(data, model):
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise HandlerError(500, f"the model ({type(model).__name__}) has no predict() and is not callable: "
                            "write a predict_fn")


def _to_jsonable(o):
    np = _np()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def encode(prediction, accept):
    ct = _media(accept)
    if ct == JSON:
        return json.dumps(prediction, default=_to_jsonable).encode()
    np = _np()
    if ct == CSV:
        buf = io.StringIO()
        arr = np.asarray(prediction)
        np.savetxt(buf, arr.reshape(-1, 1) if arr.ndim == 1 else arr, delimiter=",", fmt="%s")
        return buf.getvalue().encode()
    if ct == NPY:
        buf = io.BytesIO()
        np.save(buf, np.asarray(prediction), allow_pickle=False)
        return buf.getvalue()
    raise HandlerError(406, f"cannot answer in {accept!r}: accepts {JSON}, {CSV} or {NPY}, or write an output_fn")


def default_output_fn(prediction, accept):
    return encode(prediction, accept), _media(accept)


def _takes_context(fn, nbase):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    n = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return n > nbase


_CODECS = (JSON, CSV, NPY)


class Handler:
    def __init__(self, model_dir):
        self.model_dir = model_dir
        # read once: the environment of a serving worker does not change
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON
        self.name = os.path.basename(os.path.normpath(model_dir))
        self.module = self._import()
        get = (lambda n: getattr(self.module, n, None)) if self.module else (lambda n: None)
        self.transform_fn = get("transform_fn")
        custom = [n for n in ("input_fn", "predict_fn", "output_fn") if get(n)]
        if self.transform_fn and custom:
            raise ValueError(f"{self.module.__file__} defines transform_fn and {', '.join(custom)}: use one or the other")
        self.fns = {}
        for name, default, nbase in (("model_fn", None, 1), ("input_fn", default_input_fn, 2),
                                     ("predict_fn", default_predict_fn, 2), ("output_fn", default_output_fn, 2),
                                     ("transform_fn", None, 4)):
            fn = get(name) or default
            self.fns[name] = (fn, fn is not None and fn is not default and _takes_context(fn, nbase))
        if self.fns["model_fn"][0] is None:
            where = self.module.__file__ if self.module else f"{model_dir}/code/{self.program}"
            raise NotImplementedError(f"no model_fn in {where}: write model_fn(model_dir) that loads and returns "
                                      "the model")
        self.model = self._call("model_fn", Context(self.name, model_dir), model_dir)

    def _import(self):
        self.program = os.environ.get("SAGEMAKER_PROGRAM") or "inference.py"
        dirs = [os.path.join(self.model_dir, "code"), os.environ.get("SMHOST_SERVE_CODE_DIR", "")]
        for d in dirs:
            path = os.path.join(d, self.program) if d else ""
            if path and os.path.isfile(path):
                if d not in sys.path:
                    sys.path.insert(0, d)
                modname = os.path.splitext(self.program)[0]
                if modname in sys.modules:  # a second model with its own code (multi-model)
                    modname = f"{modname}_{abs(hash(path))}"
                spec = importlib.util.spec_from_file_location(modname, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[modname] = mod
                spec.loader.exec_module(mod)
                return mod
        return None

    def _call(self, name, ctx, *args):
        fn, with_ctx = self.fns[name]
        return fn(*args, ctx) if with_ctx else fn(*args)

    def invoke(self, body, content_type, accept, attrs):
        ctx = Context(self.name, self.model_dir)
        content_type = content_type or JSON
        default_accept = self.default_accept
        if not accept or accept == "*/*" or _media(accept) == "*/*":
            accept = default_accept
        ctx.content_type, ctx.accept, ctx.custom_attributes = content_type, accept, attrs
        if self.transform_fn:
            result = self._call("transform_fn", ctx, self.model, body, content_type, accept)
            out_ct = accept
        else:
            if self.fns["output_fn"][0] is default_output_fn and accept not in _CODECS:
                # Accept may list several types: answer in the first one a codec can write.
                choices = [_media(a) for a in accept.split(",")]
                accept = next((c if c != "*/*" else default_accept for c in choices
                               if c in (JSON, CSV, NPY, "*/*")), accept)
            data = self._call("input_fn", ctx, body, content_type)
            prediction = self._call("predict_fn", ctx, data, self.model)
            result = self._call("output_fn", ctx, prediction, accept)
            out_ct = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, out_ct = result
        if isinstance(result, str):
            result = result.encode()
        elif not isinstance(result, (bytes, bytearray, memoryview)):
            result = encode(result, JSON if _media(out_ct) == "*/*" else out_ct)
        return bytes(result), ctx.response_content_type or out_ct, ctx.response_custom_attributes or ""


def load_model(model_dir):
    return Handler(model_dir)


def invoke(handler, body, content_type, accept, attrs):
    """Returns (status, body, content_type, custom_attributes, error message)."""
    try:
        out, ct, attrs_out = handler.invoke(body, content_type, accept, attrs)
        return 200, out, ct, attrs_out, ""
    except BaseException as e:  # a handler's SystemExit must not end the worker
        status = getattr(e, "status_code", None)
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = 500
        if status >= 500:
            traceback.print_exc()
            sys.stderr.flush()
        known = isinstance(getattr(e, "status_code", None), int)
        return status, b"", "", "", str(e) if known else f"{type(e).__name__}: {e}"
