"""LeNet-5 on 28x28x1: training steps at batch 64 and 256, inference at batch 256."""

from benchmarks.workload import Workload

WORKLOADS = [
    Workload("lenet5_train_b64", "lenet5", 64, "train", 1.0),
    Workload("lenet5_train_b256", "lenet5", 256, "train", 1.0),
    Workload("lenet5_infer_b256", "lenet5", 256, "infer", 1.0),
]
