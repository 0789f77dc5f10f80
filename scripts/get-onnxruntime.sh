#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that xmodal loads at run time (ort "load-dynamic").
#
# The library comes from the official PyPI wheel (no other download is possible on the
# project's machines). Only the .so files are unpacked; the Python parts of the wheel are not.
#
# Usage:
#   scripts/get-onnxruntime.sh [DIR]          CPU build into DIR (default /usr/local/lib/xmodal)
#   scripts/get-onnxruntime.sh --gpu [DIR]    CUDA build (onnxruntime-gpu, ~256 MB wheel) into DIR
#                                             (default /usr/local/lib/xmodal-gpu); not used in CI.
#                                             Running it also needs CUDA 13 runtime libraries
#                                             (libcublas, libcudart, libcurand, cuDNN 9) and the
#                                             driver's libcuda.so.1, which this script does not fetch.
# Result: DIR/libonnxruntime.so.1.31.1, DIR/libonnxruntime.so -> that file, and the provider
# libraries of the wheel (libonnxruntime_providers_*.so). Running it again is a no-op.
# Environment: PYTHON (default python3) must have pip.
set -euo pipefail

ORT_VERSION=1.31.1
PACKAGE=onnxruntime
DEFAULT_DIR=/usr/local/lib/xmodal
if [[ "${1:-}" == "--gpu" ]]; then
    PACKAGE=onnxruntime-gpu
    DEFAULT_DIR=/usr/local/lib/xmodal-gpu
    shift
fi
DIR="${1:-$DEFAULT_DIR}"
LIB="libonnxruntime.so.${ORT_VERSION}"
PYTHON="${PYTHON:-python3}"

if [[ -s "$DIR/$LIB" && -L "$DIR/libonnxruntime.so" ]]; then
    echo "get-onnxruntime: $DIR/$LIB already present"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "get-onnxruntime: downloading ${PACKAGE}==${ORT_VERSION} wheel from PyPI"
if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 \
        --dest "$tmp" "${PACKAGE}==${ORT_VERSION}"; then
    echo "get-onnxruntime: ERROR: pip could not download ${PACKAGE}==${ORT_VERSION} from PyPI" >&2
    echo "  (is PyPI reachable from this machine, and does '$PYTHON -m pip' work?)" >&2
    exit 1
fi

wheel="$(ls "$tmp"/*.whl)"
mkdir -p "$DIR"
# Unpack only onnxruntime/capi/libonnxruntime*.so* (the runtime and its execution providers).
"$PYTHON" - "$wheel" "$DIR" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist()
             if n.startswith("onnxruntime/capi/libonnxruntime") and ".so" in n]
    if not names:
        sys.exit("get-onnxruntime: ERROR: no libonnxruntime in " + wheel)
    for n in names:
        target = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(target + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
        print("get-onnxruntime: installed", target)
PY

if [[ ! -s "$DIR/$LIB" ]]; then
    echo "get-onnxruntime: ERROR: $LIB was not in the wheel" >&2
    exit 1
fi
ln -sfn "$LIB" "$DIR/libonnxruntime.so"
echo "get-onnxruntime: $DIR/libonnxruntime.so -> $LIB"
