"""python -m tlc export-onnx MODEL ONNX: the ONNX export for the command line (what `tlc export --onnx` runs)."""
import argparse
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tlc", description="tlc's Python-side commands")
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export-onnx", help="write an ONNX file from a tlc model file (or run folder)")
    ex.add_argument("model", help="model.pt written by `tlc train` or TransferClassifier.save, or its run folder")
    ex.add_argument("onnx", help="the ONNX file to write")
    ex.add_argument("--opset", type=int, default=17)
    args = ap.parse_args(argv)
    from . import export_onnx
    try:
        path = export_onnx(args.model, args.onnx, opset=args.opset)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        name = e.name or "onnx"
        print(f"error: the ONNX export needs the {name} package ({e}); install it into this Python "
              f"({sys.executable} -m pip install {name}), or set TLC_PYTHON to the project's .venv/bin/python",
              file=sys.stderr)
        return 2
    print(f"wrote {path}: input images uint8 [batch,S,S,3], output probabilities [batch,K]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
