# vitrt developer entry points. Every target creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VITRT := $(VENV)/bin/vitrt
STAMP := $(VENV)/.vitrt-installed
# torch/torchvision builds that this machine kind serves from local disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
DEMO_MODEL ?= agent_digits
DEMO_PORT ?= 8000
OUT ?= out

.PHONY: venv demo serve-demo test test-all lint kernels clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[all,dev]"
	# The stubs declare a dependency on the real TensorRT wheel, which cannot be installed here.
	$(PY) -m pip install -q --no-deps tensorrt-stubs==10.13.0.35.1
	# A real tritonserver (python backend) for tests/triton; --no-deps: its numpy < 2 pin stays out of the venv.
	$(PY) -m pip install -q --no-deps nvidia-pytriton==0.7.0
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VITRT) models
	$(VITRT) export $(DEMO_MODEL) --out $(OUT)/$(DEMO_MODEL).onnx
	$(VITRT) parity --model $(DEMO_MODEL) --artifact $(OUT)/$(DEMO_MODEL).onnx --backends torch,onnxruntime,openvino \
		--inputs demo-digits --report $(OUT)/$(DEMO_MODEL).parity
	@$(MAKE) --no-print-directory serve-demo

# Serves the demo model exported by `make demo` on the faster CPU runtime at FP32 (ONNX Runtime or OpenVINO, both
# checked by the parity step; the startup log says which and why). The server runs as the terminal's foreground job,
# so Ctrl-C stops it alone and make exits with the server's status (0 on a clean stop), not by the signal.
serve-demo:
	@echo "Serving $(DEMO_MODEL) on http://127.0.0.1:$(DEMO_PORT)/ (demo page; API at /docs, KServe v2 at /v2). Ctrl-C stops."
	@$(PY) scripts/foreground.py $(VITRT) serve $(OUT)/$(DEMO_MODEL).onnx --backend auto \
		--host 127.0.0.1 --port $(DEMO_PORT)

# The CUDA kernel library (nvcc, sm_80/86/89/90) into build/plugins, and the TensorRT plugin library against the
# header sets in $(VITRT_TENSORRT_HEADERS) (<version>/include; the newest is linked, the others compile-checked, all
# with -Werror); without them, against $TENSORRT_ROOT when set. CI builds both on every run: a compile error or
# warning fails `make test`.
VITRT_TENSORRT_HEADERS ?= ../shared/third_party/tensorrt
kernels: venv
	$(PY) -m vitrt plugins build $(if $(wildcard $(VITRT_TENSORRT_HEADERS)/*/include/NvInfer.h),--tensorrt-header-sets $(VITRT_TENSORRT_HEADERS))

test: venv kernels
	$(PY) -m pytest

test-all: venv kernels
	$(PY) -m pytest -m ""

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy src/vitrt
	# TensorRT code paths, checked against the tensorrt-stubs API (see the script for why it wraps mypy).
	$(PY) scripts/mypy_tensorrt.py

clean:
	rm -rf build $(OUT) .pytest_cache
