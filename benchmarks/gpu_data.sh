#!/usr/bin/env bash
# Make .gpu-data, the copy of MNIST, Fashion-MNIST and the cached full-data networks that a GPU session carries
# (the device machine reaches no network and gets only the repository and the paths a call names in `carry`):
#
#     DISTILL_DATA=../shared/data bash benchmarks/gpu_data.sh      # then carry [".gpu-data"]
#
# The repository and a call's carried paths must stay under 64 MiB together, and the two datasets' gzipped files
# are 42 MB: the training images travel as xz instead (7.9 and 22.7 MB against 9.9 and 26.4), which
# benchmarks/gpu_session.sh turns back into the .gz files the loader reads before it starts any run.
set -eu
cd "$(dirname "$0")/.."
data=${DISTILL_DATA:?point DISTILL_DATA at the folder holding mnist/ and fashion-mnist/}
models=${DISTILL_CACHE:-$HOME/.cache/distill/models}
grep -qx '.gpu-data/' .git/info/exclude 2>/dev/null || echo '.gpu-data/' >>.git/info/exclude
for d in mnist fashion-mnist; do
    mkdir -p ".gpu-data/$d"
    cp "$data/$d/t10k-images-idx3-ubyte.gz" "$data/$d/t10k-labels-idx1-ubyte.gz" "$data/$d/train-labels-idx1-ubyte.gz" \
        ".gpu-data/$d/"
    [ -e ".gpu-data/$d/train-images-idx3-ubyte.xz" ] || gzip -dc "$data/$d/train-images-idx3-ubyte.gz" | xz -9 -T0 \
        >".gpu-data/$d/train-images-idx3-ubyte.xz"
done
mkdir -p .gpu-data/models
cp "$models"/mnist-convnet-* "$models"/fashion-mnist-convnet-* .gpu-data/models/ 2>/dev/null \
    || echo "no cached full-data ConvNets in $models: each GPU run would train its own"
du -sh .gpu-data
