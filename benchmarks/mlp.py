"""A multilayer perceptron 784-256-10 (ReLU): training step at batch 128."""

from benchmarks.workload import Workload

WORKLOADS = [Workload("mlp_train_b128", "mlp", 128, "train", 1.0)]
