# The iter worker image for docker-compose.yml. Steps run in sibling executor containers started
# through the host's Docker socket, so this image needs the Docker SDK, not a Docker engine.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/iter
COPY pyproject.toml README.md worker.py ./
COPY models models
COPY policy policy
COPY workflows workflows
COPY activities activities
COPY cli cli
COPY temporal temporal
RUN pip install --no-cache-dir ".[docker]"
# The console script, never `python -m worker` from a working directory that could shadow it.
CMD ["iter", "worker"]
