# Gaudi worker: an Airflow Celery worker (queue "hpu") on Intel Gaudi's
# PyTorch image, with this project installed.
#
# optimum-habana 1.21.2 (the `hpu` extra) is validated against the Intel Gaudi
# software stack 1.24; its PyTorch comes from this image and is never pinned
# or reinstalled by pip. Change the three ARGs together, following Intel's
# support matrix, when moving to another stack.
ARG SYNAPSE_VERSION=1.24.0
ARG UBUNTU=ubuntu22.04
ARG PT_VERSION=2.10.0
FROM vault.habana.ai/gaudi-docker/${SYNAPSE_VERSION}/${UBUNTU}/habanalabs/pytorch-installer-${PT_VERSION}:latest

# Habana's DeepSpeed fork, for tensor parallel (world_size > 1) configs; the
# tag optimum-habana 1.21.2's README installs.
ARG DEEPSPEED_REF=1.23.0
# The image every run in this container records (environment.image), so a
# verdict can say "image stack-1.21 -> stack-1.22". docker-compose passes the
# tag it builds (BENCH_HPU_IMAGE); set it to the tag you push.
ARG SYNAPSE_VERSION
ARG PT_VERSION
ARG BENCH_IMAGE=llm-bench-hpu:synapse${SYNAPSE_VERSION}-pt${PT_VERSION}

ENV BENCH_IMAGE=${BENCH_IMAGE} \
    PT_HPU_LAZY_MODE=1 \
    OMPI_MCA_btl_vader_single_copy_mechanism=none \
    AIRFLOW_HOME=/opt/airflow \
    BENCH_HOME=/var/lib/bench \
    HF_HOME=/var/lib/hf \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/bench

# Every package the base image ships stays at the version Intel validated:
# its `pip list` pins them, this repo's constraints.txt pins the rest
# (docker/merge_constraints.py). Every pip install below uses the result, so
# a dependency that would move part of the validated stack fails the build.
COPY constraints.txt docker/merge_constraints.py /opt/bench/docker/
RUN pip list --format=freeze > /opt/bench/docker/base-freeze.txt \
 && python /opt/bench/docker/merge_constraints.py /opt/bench/docker/base-freeze.txt \
        /opt/bench/docker/constraints.txt > /opt/bench/docker/hpu-constraints.txt

RUN pip install -c /opt/bench/docker/hpu-constraints.txt \
        "git+https://github.com/HabanaAI/DeepSpeed.git@${DEEPSPEED_REF}"

COPY pyproject.toml README.md ./
COPY bench ./bench
# Editable install: prompts/, sql/, dags/ and plugins/ are read from /opt/bench.
# Then the stack must hold together (pip check) and its Gaudi parts must import
# (no card is needed to import them; none is used at build time).
RUN pip install -c /opt/bench/docker/hpu-constraints.txt -e '.[hpu,airflow]' \
 && pip check \
 && python -c "import habana_frameworks.torch.core, neural_compressor.torch.quantization, deepspeed" \
 && bench --help > /dev/null
COPY prompts ./prompts
COPY sql ./sql
COPY dags ./dags
COPY plugins ./plugins
COPY benchmarks ./benchmarks

RUN mkdir -p "$AIRFLOW_HOME/logs" "$BENCH_HOME" "$HF_HOME"
CMD ["airflow", "celery", "worker", "--queues", "hpu"]
