"""ONNX export of a tlc model file, for serving without tlc or PyTorch (ONNX Runtime, Triton's ONNX backend).

The exported graph is the model file's classify_images: uint8 RGB images [batch, S, S, 3] (already resized to
the model's image size) in, class probabilities [batch, K] out; the normalization is inside the graph. The class
names and preprocessing ride along as metadata (class_names, image_size, normalize, resize)."""
import json
import os

import torch


class _ClassifyImages(torch.nn.Module):
    """forward = the model file's classify_images, scripted (the exporter follows script methods, the tracer
    does not)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.classify_images(images)


def export_onnx(model_path, onnx_path, opset=17):
    """Writes `onnx_path` from a tlc model file (or run folder); returns the path. Input "images" uint8
    [batch,S,S,3], output "probabilities" float [batch,K]; the batch axis is dynamic."""
    import onnx  # torch's TorchScript exporter needs it; pip install onnx

    path = os.fspath(model_path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.pt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist: give a model.pt written by `tlc train` or "
                                "TransferClassifier.save, or its run folder")
    try:
        m = torch.jit.load(path, map_location="cpu")
        meta = {"class_names": list(m.class_names), "image_size": int(m.image_size),
                "normalize": str(m.normalize), "resize": str(getattr(m, "resize", "stretch"))}
    except (RuntimeError, AttributeError) as e:
        raise ValueError(f"{path} is not a tlc model file ({e}); make one with `tlc train` or "
                         "TransferClassifier.save") from None
    size = meta["image_size"]
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    torch.onnx.export(torch.jit.script(_ClassifyImages(m).eval()), (example,), os.fspath(onnx_path), dynamo=False,
                      input_names=["images"], output_names=["probabilities"], opset_version=opset,
                      dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}})
    proto = onnx.load(os.fspath(onnx_path))
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v) if isinstance(v, list) else str(v)
    onnx.save(proto, os.fspath(onnx_path))
    return os.fspath(onnx_path)


def preprocess(X, model):
    """X as the exported ONNX graph (and a model file's classify_images) takes it: uint8 [N,S,S,3] RGB numpy
    pixels at the model's image size, decoded and resized by tlc's own code, the way fit and predict do (a
    resize in PIL or OpenCV differs from it by a few levels, enough to move probabilities by a few hundredths).

    X: any X that predict takes (paths, arrays, PIL images...). model: a fitted TransferClassifier, a model
    file or run folder, or the .onnx file export_onnx wrote (its metadata names the size and resize mode).
    An image that cannot be decoded is a ValueError naming it."""
    from ._inputs import Images
    size, resize = _preprocessing_of(model)
    return Images(X).pixels(size, resize).numpy()


def _preprocessing_of(model):
    if hasattr(model, "get_params"):
        if not hasattr(model, "model_"):
            raise ValueError("the TransferClassifier given to preprocess() is not fitted: fit it first")
        return int(model.model_.image_size), str(model.model_.resize)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a fitted TransferClassifier or the path of a model file, run folder or "
                        f".onnx file, got {type(model).__name__}")
    path = os.fspath(model)
    if os.path.isdir(path):
        path = os.path.join(path, "model.pt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.endswith(".onnx"):
        import onnx
        meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        if "image_size" not in meta:
            raise ValueError(f"{path} has no image_size metadata: it was not written by tlc.export_onnx")
        return int(meta["image_size"]), meta.get("resize", "stretch")
    try:
        m = torch.jit.load(path, map_location="cpu")
        return int(m.image_size), str(getattr(m, "resize", "stretch"))
    except (RuntimeError, AttributeError) as e:
        raise ValueError(f"{path} is not a tlc model file ({e}); give a model.pt written by `tlc train` or "
                         "TransferClassifier.save") from None
