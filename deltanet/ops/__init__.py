"""Pure forward/backward pairs on arrays: ``foo_forward -> (y, cache)``, ``foo_backward``."""

from deltanet.ops import losses
from deltanet.ops.activations import (
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    log_softmax_backward,
    log_softmax_forward,
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    sigmoid_gradient,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    tanh_backward,
    tanh_forward,
)
from deltanet.ops.conv import (
    conv_backward,
    conv_forward,
    conv_transpose_backward,
    conv_transpose_forward,
)
from deltanet.ops.dense import dense_backward, dense_forward
from deltanet.ops.dropout import dropout_backward, dropout_forward
from deltanet.ops.losses import (
    binary_cross_entropy,
    mean_squared_error,
    sigmoid_cross_entropy,
    softmax_cross_entropy,
)
from deltanet.ops.norm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
    batch_norm_inference_backward,
    batch_norm_stats,
)
from deltanet.ops.pool import (
    avg_pool_backward,
    avg_pool_forward,
    global_avg_pool_backward,
    global_avg_pool_forward,
    global_max_pool_backward,
    global_max_pool_forward,
    max_pool_backward,
    max_pool_forward,
)
from deltanet.ops.reshape import (
    flatten_backward,
    flatten_forward,
    reshape_backward,
    reshape_forward,
)

__all__ = [name for name in dir() if not name.startswith("_")]
