"""Other convolutional workloads: a VGG block, the MNIST-1D Conv1D network, a Conv3D network."""

from benchmarks.workload import Workload

WORKLOADS = [
    # 3x3 conv 64 -> 64 on 32x32, ReLU, max-pool 2: forward + backward (δ for input and weights)
    Workload("vgg_block_fwd_bwd_b32", "vgg_block", 32, "fwd_bwd", 1.0),
    Workload("cnn1d_train_b256", "cnn1d", 256, "train", 1.0),
    Workload("cnn3d_train_b16", "cnn3d", 16, "train", 1.0),
]
