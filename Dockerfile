# CPU image of paiexport: `docker build -t paiexport . && docker run --rm paiexport run snip90`
FROM python:3.11-slim

# torch is pinned and taken from the CPU index so no CUDA packages are pulled in.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY paiexport ./paiexport
COPY recipes ./recipes
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
 && pip install --no-cache-dir "torch==${TORCH_VERSION}" .

# Runs write to /app/models/<recipe name>; mount a volume there to keep them.
ENTRYPOINT ["paiexport"]
CMD ["--help"]
