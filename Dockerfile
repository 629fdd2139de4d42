# semsearch API image: CPU-only torch (scripts/install.sh takes it from PyTorch's CPU index).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY storage ./storage
COPY indexer ./indexer
COPY search_api ./search_api
# Extras to bake in, e.g. "milvus" for the compose milvus profile (pymilvus).
ARG SEMSEARCH_EXTRAS=""
RUN bash scripts/install.sh /opt/venv "$SEMSEARCH_EXTRAS" && rm -rf /root/.cache/pip
ENV PATH=/opt/venv/bin:$PATH \
    SEMSEARCH_DATA_DIR=/data \
    SEMSEARCH_HOST=0.0.0.0 \
    SEMSEARCH_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
CMD ["semsearch", "serve"]
