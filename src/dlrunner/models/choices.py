"""The names a model config may choose from, shared by the builders and the config's validation."""

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "linear")
INITS = ("he", "xavier", "glorot", "small_random", "zeros", "pytorch")
