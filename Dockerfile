# Enclava worker / CLI image. Build: docker build -t enclava .   Run: docker run --rm enclava --help
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY attestation ./attestation
COPY enclave ./enclave
COPY agents ./agents
COPY contracts ./contracts
COPY enclava ./enclava
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 enclava
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER enclava
ENTRYPOINT ["enclava"]
CMD ["--help"]
